//! A workspace held lean: each file's text, each item's outline
//! ([`crate::check::model::outline`]) and where each chunk of whole items lies, so that a
//! chunk's full syntax tree is parsed again when it is needed and dropped after. `wvflow
//! check` and the language server work this way: their memory grows with the text and the
//! outlines (about 2x the input together), not with the full trees (about 7x).

use crate::check::model::outline::{compact, outline, stages_to_keep};
use crate::source::{FileId, SourceFile};
use crate::syntax::ast::{File, Item};
use crate::syntax::{self, ChunkSpec, FileErrors, Parsed};
use crate::workspace::{LoadError, Workspace};
use std::borrow::Cow;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Up to this many bytes of source, the full trees are kept (about 7 MiB of them): a small
/// workspace is not parsed twice, and is held as [`Workspace`] holds it.
pub const KEEP_TREES_UP_TO: usize = 1 << 20;

pub struct Chunked {
    /// The files; each file's `parsed` holds its items (outlines, unless the trees are kept)
    /// in file order, and its syntax diagnostics.
    pub workspace: Workspace,
    /// Each file's chunks, in order.
    chunks: Vec<Vec<ChunkAt>>,
    /// Whether `workspace` holds the full trees.
    trees: bool,
}

/// One chunk of a file: where it lies, and which of the file's items it holds.
struct ChunkAt {
    spec: ChunkSpec,
    items: Range<usize>,
}

/// A chunk's items in full: parsed again, or borrowed where the trees are kept.
pub struct FullChunk<'a> {
    pub file: FileId,
    pub chunk: usize,
    pub items: Cow<'a, [Item]>,
}

impl Chunked {
    /// Loads every file the paths name, as [`Workspace::load`] does.
    pub fn load(paths: &[PathBuf]) -> (Chunked, Vec<LoadError>) {
        let (files, mut errors) = crate::workspace::read_all(paths);
        let files = files.into_iter().map(|(p, t)| (p, Arc::new(t))).collect();
        let mut chunked = Chunked::new(files);
        if let Some(first) = paths.first() {
            errors.extend(chunked.configure(first));
        }
        (chunked, errors)
    }

    /// Reads the workspace's `wvflow.toml`, as [`Workspace::configure`] does: a file without
    /// chunks.
    pub fn configure(&mut self, start: &std::path::Path) -> Option<LoadError> {
        let before = self.workspace.sources.len();
        let error = self.workspace.configure(start);
        if self.workspace.sources.len() > before {
            self.chunks.push(Vec::new());
        }
        error
    }

    /// Parses the files on every core, keeping the outlines and dropping each chunk's tree,
    /// or keeping the trees up to [`KEEP_TREES_UP_TO`] bytes of source.
    pub fn new(files: Vec<(PathBuf, Arc<String>)>) -> Chunked {
        let size: usize = files.iter().map(|(_, text)| text.len()).sum();
        Chunked::with_trees(files, size <= KEEP_TREES_UP_TO)
    }

    /// As [`Chunked::new`], keeping the full trees or only the outlines, as asked.
    pub fn with_trees(files: Vec<(PathBuf, Arc<String>)>, trees: bool) -> Chunked {
        Chunked::sized(files, trees, None)
    }

    /// As [`Chunked::with_trees`], with chunks of at least `min_bytes` (of 64 KiB by default):
    /// tests cut small inputs into many chunks.
    #[doc(hidden)]
    pub fn sized(
        files: Vec<(PathBuf, Arc<String>)>,
        trees: bool,
        min_bytes: Option<usize>,
    ) -> Chunked {
        let mut workspace = Workspace::default();
        let mut too_large = Vec::new();
        let mut plans = Vec::new();
        for (path, text) in files {
            let name = crate::workspace::display_name(&path);
            let id = FileId(workspace.sources.len() as u32);
            // A file too large for `u32` spans is reported and not parsed, as `syntax::parse`
            // does.
            let large = syntax::too_large(&text, id);
            plans.push(match large {
                Some(_) => Vec::new(),
                None => match min_bytes {
                    Some(n) => syntax::chunk_plan_sized(&text, id, n),
                    None => syntax::chunk_plan(&text, id),
                },
            });
            too_large.push(large);
            workspace.sources.add(SourceFile::shared(path, name, text));
        }
        let work: Vec<(FileId, usize)> = plans
            .iter()
            .enumerate()
            .flat_map(|(f, plan)| (0..plan.len()).map(move |c| (FileId(f as u32), c)))
            .collect();
        let sources = &workspace.sources;
        let parsed = crate::parallel::map_indexed(work.len(), |i| {
            let (file, c) = work[i];
            let started = Instant::now();
            let mut chunk = syntax::parse_chunk(&sources.get(file).text, &plans[file.0 as usize][c], file);
            let mut items = std::mem::take(&mut chunk.items);
            if !trees {
                items = items.iter().map(outline).collect();
            }
            (items, chunk, started.elapsed())
        });
        let mut parsed = parsed.into_iter();
        let mut chunks = Vec::new();
        for (plan, large) in plans.into_iter().zip(too_large) {
            let mut items = Vec::new();
            let mut errors = FileErrors::default();
            let mut time = Duration::ZERO;
            let mut at = Vec::new();
            for spec in plan {
                // One result per planned chunk, in the same order.
                let Some((outlines, mut chunk, elapsed)) = parsed.next() else {
                    break;
                };
                let first = items.len();
                items.extend(outlines);
                errors.add(&mut chunk);
                time += elapsed;
                at.push(ChunkAt {
                    spec,
                    items: first..items.len(),
                });
            }
            items.shrink_to_fit();
            let diagnostics = match large {
                Some(d) => vec![d],
                None => errors.finish(),
            };
            workspace.parsed.push(Parsed {
                ast: File { items },
                diagnostics,
            });
            workspace.parse_times.push(time);
            chunks.push(at);
        }
        give_back_free_memory();
        Chunked {
            workspace,
            chunks,
            trees,
        }
    }

    /// How many chunks `file` has.
    pub fn chunk_count(&self, file: FileId) -> usize {
        self.chunks[file.0 as usize].len()
    }

    /// Makes the outlines smaller, now that every outline is known (`outline::compact`), in
    /// allocations that lie together. The two sets held for a moment raise the peak of a
    /// large workspace without problems (50 MB: 140 MB instead of 121), but the smaller set
    /// leaves room for what comes next (the diagnostics, ariadne's table of lines: 5 MB with
    /// a problem every 300 bytes, 22.8 MB instead of 24.6), and checking goes faster over it
    /// (4.3 s of CPU instead of 5.0 at 50 MB).
    pub fn compact(&mut self) {
        if !self.trees {
            compact_outlines(&mut self.workspace);
            give_back_free_memory();
        }
    }

    /// Whether the full trees are kept (then [`Chunked::outlines`] gives them).
    pub fn keeps_trees(&self) -> bool {
        self.trees
    }

    /// The outlines of a chunk's items (their trees where they are kept).
    pub fn outlines(&self, file: FileId, chunk: usize) -> &[Item] {
        let range = self.chunks[file.0 as usize][chunk].items.clone();
        &self.workspace.parsed[file.0 as usize].ast.items[range]
    }

    /// A chunk's items in full: parsed again (the same as the first time), unless kept.
    pub fn parse(&self, file: FileId, chunk: usize) -> FullChunk<'_> {
        if self.trees {
            return FullChunk {
                file,
                chunk,
                items: Cow::Borrowed(self.outlines(file, chunk)),
            };
        }
        let spec = &self.chunks[file.0 as usize][chunk].spec;
        let text = &self.workspace.sources.get(file).text;
        FullChunk {
            file,
            chunk,
            items: Cow::Owned(syntax::parse_chunk(text, spec, file).items),
        }
    }

    /// The chunk of `file` that holds `offset` (the last one for the end of the file).
    pub fn chunk_of(&self, file: FileId, offset: usize) -> Option<usize> {
        let chunks = &self.chunks[file.0 as usize];
        let after = chunks.partition_point(|c| c.spec.range().start <= offset);
        after.checked_sub(1)
    }

    /// The chunks of `file` whose bytes hold `offset`: one, or two at the boundary between
    /// them (where an item of the first may end).
    pub fn chunks_at(&self, file: FileId, offset: usize) -> Vec<usize> {
        let chunks = &self.chunks[file.0 as usize];
        (0..chunks.len())
            .filter(|&c| {
                let range = chunks[c].spec.range();
                range.start <= offset && offset <= range.end
            })
            .collect()
    }

    /// `f` of each chunk's full items, on every core, handed to `sink` in file and chunk
    /// order; only the trees and results of a few chunks are in memory at once.
    pub fn map_in_order<R: Send>(
        &self,
        f: impl Fn(FullChunk<'_>) -> R + Sync,
        sink: impl FnMut(R),
    ) {
        let work = self.all_chunks(|_| true);
        let window = 4 * crate::parallel::cores();
        crate::parallel::for_each_in_order(
            work.len(),
            window,
            |i| f(self.parse(work[i].0, work[i].1)),
            sink,
        );
        give_back_free_memory();
    }

    /// `f` of each chunk's full items of the files `wanted`, in file and chunk order, one
    /// after the other; the next chunks are parsed meanwhile on the other cores, a few at a
    /// time.
    pub fn for_each(&self, wanted: impl Fn(FileId) -> bool, mut f: impl FnMut(FullChunk<'_>)) {
        let work = self.all_chunks(wanted);
        let window = 2 * crate::parallel::cores();
        for batch in work.chunks(window) {
            let parsed = crate::parallel::map_indexed(batch.len(), |i| {
                self.parse(batch[i].0, batch[i].1)
            });
            parsed.into_iter().for_each(&mut f);
        }
    }

    fn all_chunks(&self, wanted: impl Fn(FileId) -> bool) -> Vec<(FileId, usize)> {
        (0..self.chunks.len())
            .map(|f| FileId(f as u32))
            .filter(|&f| wanted(f))
            .flat_map(|f| (0..self.chunk_count(f)).map(move |c| (f, c)))
            .collect()
    }
}

/// Each outline again, with only what matters now that every outline is known, in new
/// allocations made together on this thread: the first outlines were made on every core, each
/// next to a chunk's tree, and are dropped.
fn compact_outlines(workspace: &mut Workspace) {
    let index = crate::check::Index::new(workspace);
    let mut keep = Vec::new();
    for (f, parsed) in workspace.parsed.iter().enumerate() {
        for item in &parsed.ast.items {
            stages_to_keep(item, FileId(f as u32), &index, &mut keep);
        }
    }
    drop(index);
    // One item at a time: its old outline goes as its new one comes. The old ones are freed
    // on another thread: freed on this one, their memory would be handed straight back (the
    // allocator's per-thread cache) to the new ones, which would lie among the old again.
    let mut keep = keep.iter();
    let (old, dropper) = std::sync::mpsc::channel::<Item>();
    std::thread::scope(|scope| {
        scope.spawn(move || dropper.into_iter().for_each(drop));
        for parsed in &mut workspace.parsed {
            for item in &mut parsed.ast.items {
                let new = compact(item, &mut keep);
                // The receiver lives as long as this scope.
                let _ = old.send(std::mem::replace(item, new));
            }
        }
        drop(old);
    });
}

/// Returns the heap's free pages to the system. Trees parsed and dropped chunk by chunk leave
/// whole free pages between what is kept (outlines, diagnostics), on every thread's heap;
/// the allocator would keep them, and what a long-lived process (the language server)
/// allocates next would count on top.
fn give_back_free_memory() {
    #[cfg(target_env = "gnu")]
    // SAFETY: `malloc_trim` only releases memory the allocator holds free.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Has the allocator give freed memory back to the system at once: parsing chunk after chunk
/// on every core frees large trees all the time, and by default glibc then raises its
/// thresholds (up to tens of MB) and keeps that much free memory on each thread's heap.
pub fn return_freed_memory() {
    #[cfg(target_env = "gnu")]
    // SAFETY: `mallopt` only sets the allocator's parameters; 128 KiB is their default start.
    unsafe {
        libc::mallopt(libc::M_TRIM_THRESHOLD, 128 * 1024);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
    }
}
