//! A fan-out (`each`, `each call`) as `wvflow run` runs it: items stream from the engine.
//! They are read a slice at a time, their arguments and keys computed for that slice only,
//! handed to at most `concurrency` workers, and each item's end is recorded (and its rows
//! gathered in the engine) as it comes. What is in memory is a slice and the items running:
//! a million items start as soon as ten do, and a cancel is seen between any two.

use super::{StageRun, StepError, hold};
use crate::check::shapes::FAILED_COLUMNS;
use crate::plan::ir::FanOut;
use crate::runtime::error::StageError;
use crate::runtime::output::Data;
use crate::runtime::retry;
use crate::runtime::store::{Gathered, ItemTable, Rows, Store};
use rusqlite::types::Value;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

/// Items read and prepared at a time. A fan-out of at most this many computes every item's
/// arguments and key before its first item starts, so that an error there fails the stage
/// before any call.
const SLICE: usize = 1024;

/// How often the thread that hands out items looks at the cancel flags while it waits for
/// an item to end.
const LOOK: Duration = Duration::from_millis(20);

/// One item for a worker: its place, its idempotency key, what its call needs.
pub(super) struct Job<T> {
    pub index: usize,
    pub key: Option<String>,
    pub payload: T,
}

/// How an item ended. The worker waits for `recorded` before it takes another item: so a
/// crash can lose (and a resume run again) at most `concurrency` items.
struct Ended {
    index: usize,
    done: retry::Finished<Rows>,
    recorded: mpsc::SyncSender<()>,
}

/// An item ready to hand out, with its input row.
type Ready<T> = (Job<T>, Vec<Value>);

/// An item handed out and not ended: its key and its input row (for `failed(...)`).
type Out = (Option<String>, Vec<Value>);

/// What the items' ends add up to.
struct Tally {
    gathered: Gathered,
    /// The failed items' rows, when a stage reads them (`failed(stage)`), and their columns.
    failed_rows: Option<(Gathered, Rows)>,
    failed: usize,
    /// The failure of the first item (by place) that failed.
    first_failure: Option<(usize, String)>,
    cancelled: bool,
    attempts: u32,
    /// Items handed to a worker (the others reused recorded rows).
    handed_out: usize,
    /// Why the fan-out stopped handing out items, or could not record one's end.
    error: Option<StageError>,
}

/// What a fan-out needs to prepare a slice: the items' arguments (and whatever else the call
/// needs) for the rows marked fresh; `None` for the others.
pub(super) type Prepare<'p, T> =
    dyn Fn(&mut Store, &Rows, &[bool]) -> Result<Vec<Option<T>>, crate::runtime::store::Error> + 'p;

/// What a worker does with an item: its call, retried as the stage says; the stage's cancel
/// flag stops it.
pub(super) type Work<'w, T> = dyn Fn(&Job<T>, &Arc<AtomicBool>) -> retry::Finished<Rows> + Sync + 'w;

/// The items read and not handed out yet, and where reading goes on.
struct Feed<T> {
    waiting: VecDeque<Ready<T>>,
    next: usize,
    total: usize,
}

impl<T> Feed<T> {
    /// Every item was read and handed out.
    fn drained(&self) -> bool {
        self.waiting.is_empty() && self.next >= self.total
    }
}

/// The channels between the thread that hands out items and the workers, and how many
/// items may be out at once.
struct Lanes<T> {
    jobs: mpsc::Sender<Job<T>>,
    ended: mpsc::Receiver<Ended>,
    limit: usize,
}

/// What every worker shares: the run, the stage, its cancel flag, its pool's slots, the work.
struct Crew<'c, 'w, T> {
    ctx: &'c super::Context<'c>,
    stage: &'c crate::plan::ir::StagePlan,
    cancel: &'c Arc<AtomicBool>,
    workspace_db: Option<&'c std::path::Path>,
    occupancy: &'c super::Occupancy,
    work: &'w Work<'w, T>,
}

impl<T> Crew<'_, '_, T> {
    /// The run's or the stage's cancel; the run's is seen here at once, before the executor
    /// passes it on to the stage's.
    fn cancelled(&self) -> bool {
        self.cancel.load(Ordering::Relaxed) || self.ctx.cancel.load(Ordering::Relaxed)
    }

    /// A worker: takes items until there are no more, tells how each ended, and waits for
    /// it to be recorded before it takes another.
    fn take_items(&self, queue: &Mutex<mpsc::Receiver<Job<T>>>, ends: mpsc::Sender<Ended>) {
        loop {
            let job = match queue.lock() {
                Ok(queue) => queue.recv(),
                Err(_) => return,
            };
            let Ok(job) = job else { return };
            let done = self.run(&job);
            let (recorded, wait) = mpsc::sync_channel(1);
            let end = Ended {
                index: job.index,
                done,
                recorded,
            };
            if ends.send(end).is_err() {
                return;
            }
            let _ = wait.recv();
        }
    }

    /// One item: nothing after a cancel; else its call, holding a slot of the stage's pool
    /// while it runs.
    fn run(&self, job: &Job<T>) -> retry::Finished<Rows> {
        let (ctx, stage, cancel) = (self.ctx, self.stage, self.cancel);
        let refused = |e| retry::Finished {
            result: Err(e),
            attempts: 0,
        };
        if self.cancelled() {
            return refused(StageError::Cancelled);
        }
        let Some(pool) = &stage.pool else {
            return (self.work)(job, cancel);
        };
        let show = |queued| {
            if let Some(p) = ctx.progress {
                p.pool_wait(&stage.id, Some(job.index), &pool.name, queued);
            }
        };
        let at = (self.workspace_db, &**cancel);
        let waits = |w| self.occupancy.change(Some(w), None, show);
        match hold(ctx, stage, at, pool, Some(job.index), waits) {
            Ok(slot) => {
                self.occupancy.change(None, Some(true), show);
                let done = (self.work)(job, cancel);
                drop(slot);
                self.occupancy.change(None, Some(false), show);
                done
            }
            Err(e) => refused(e),
        }
    }
}

impl StageRun<'_, '_> {
    /// Runs `work` for each row of `input` whose item did not end before (a resume) and
    /// whose idempotency key did not succeed before, at most `fan.concurrency` at once.
    /// Returns the items' rows together (in item order), or the error past the tolerance.
    pub(super) fn stream<T: Send>(
        &mut self,
        fan: &FanOut,
        input: Data,
        prepare: &Prepare<T>,
        work: &Work<T>,
    ) -> Result<Data, StepError> {
        let items = self.store.item_table(input).map_err(|e| (e.into(), 1))?;
        let streamed = self.stream_items(fan, &items, prepare, work);
        let _ = self.store.drop_items(items);
        streamed
    }

    fn stream_items<T: Send>(
        &mut self,
        fan: &FanOut,
        items: &ItemTable,
        prepare: &Prepare<T>,
        work: &Work<T>,
    ) -> Result<Data, StepError> {
        let total = items.len();
        let mut tally = self.new_tally(fan, items).map_err(|e| (e, 1))?;
        let workers = (fan.concurrency.max(1) as usize).min(total);
        let (cancel, workspace_db) = (self.cancel.clone(), self.workspace_db.clone());
        let crew = Crew {
            ctx: self.ctx,
            stage: self.stage,
            cancel: &cancel,
            workspace_db: workspace_db.as_deref(),
            occupancy: &super::Occupancy::default(),
            work,
        };
        let mut feed = Feed {
            waiting: VecDeque::new(),
            next: 0,
            total,
        };
        let (jobs, job_queue) = mpsc::channel::<Job<T>>();
        let job_queue = Mutex::new(job_queue);
        let (ends, ended) = mpsc::channel::<Ended>();
        std::thread::scope(|scope| {
            for _ in 0..workers {
                let (crew, job_queue, ends) = (&crew, &job_queue, ends.clone());
                scope.spawn(move || crew.take_items(job_queue, ends));
            }
            drop(ends);
            // A job waiting in the queue for a lane would be counted as work under way by a
            // virtual clock: there, no more jobs than lanes.
            let ahead = if self.ctx.clock.counts_work() { 1 } else { 2 };
            let lanes = Lanes {
                jobs,
                ended,
                limit: ahead * workers,
            };
            self.hand_out(items, &mut feed, &mut tally, prepare, &lanes, &|| {
                crew.cancelled()
            });
        });
        // Items never handed out because of a cancel are cancelled too.
        tally.cancelled |= crew.cancelled() && !feed.drained();
        self.end_stream(fan, total, tally)
    }

    /// Reads, prepares and hands out items while fewer than `lanes.limit` are out, and
    /// records each end as it comes, until every item ended or (after a cancel or an error)
    /// every item out ended. This thread holds the stage's connection.
    fn hand_out<T>(
        &mut self,
        items: &ItemTable,
        feed: &mut Feed<T>,
        tally: &mut Tally,
        prepare: &Prepare<T>,
        lanes: &Lanes<T>,
        cancelled: &dyn Fn() -> bool,
    ) {
        let mut out: HashMap<usize, Out> = HashMap::new();
        loop {
            let stopping = tally.error.is_some() || cancelled();
            while !stopping && tally.error.is_none() && out.len() < lanes.limit {
                let Some((job, row)) = feed.waiting.pop_front() else {
                    if feed.next >= feed.total {
                        break;
                    }
                    match self.next_slice(items, feed.next, tally, prepare) {
                        Ok((prepared, read)) => {
                            feed.waiting.extend(prepared);
                            feed.next = if read == 0 { feed.total } else { feed.next + read };
                        }
                        Err(e) => tally.error = Some(e),
                    }
                    continue;
                };
                out.insert(job.index, (job.key.clone(), row));
                tally.handed_out += 1;
                // The item's work, until its end is taken below.
                self.ctx.clock.busy();
                if lanes.jobs.send(job).is_err() {
                    break;
                }
            }
            if out.is_empty() && (stopping || tally.error.is_some() || feed.drained()) {
                return;
            }
            match crate::runtime::clock::receive(self.ctx.clock, &lanes.ended, LOOK) {
                Ok(end) => {
                    let (key, row) = out.remove(&end.index).unwrap_or_default();
                    self.tally_end(tally, end.index, key, row, end.done);
                    let _ = end.recorded.send(());
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
            }
        }
    }

    /// The fan-out's end: its error, a cancel, its failed items kept, its failures past the
    /// tolerance, or its rows.
    fn end_stream(&mut self, fan: &FanOut, total: usize, tally: Tally) -> Result<Data, StepError> {
        self.all_reused = total > 0 && tally.handed_out == 0 && tally.error.is_none();
        self.attempts = self.attempts.max(tally.attempts);
        let attempts = tally.attempts.max(1);
        if let Some(error) = tally.error {
            return Err((error, attempts));
        }
        // A cancelled item is cancelled, never a tolerated failure.
        if tally.cancelled {
            return Err((StageError::Cancelled, tally.attempts));
        }
        if let Some((failed, _)) = tally.failed_rows {
            let rows = failed.finish(self.store).map_err(|e| (e.into(), attempts))?;
            let table = crate::plan::sql::failed_table(&self.stage.id);
            self.store
                .write_data("run", &table, &rows)
                .map_err(|e| (e.into(), attempts))?;
        }
        let first = tally.first_failure.map(|(_, e)| e);
        super::judged(fan, tally.failed, total, first).map_err(|e| (e, self.attempts))?;
        tally
            .gathered
            .finish(self.store)
            .map_err(|e| (e.into(), attempts))
    }

    fn new_tally(&mut self, fan: &FanOut, items: &ItemTable) -> Result<Tally, StageError> {
        let failed_rows = match fan.keep_failed {
            true => Some(self.failed_gathering(items)?),
            false => None,
        };
        Ok(Tally {
            gathered: Gathered::new(self.store),
            failed_rows,
            failed: 0,
            first_failure: None,
            cancelled: false,
            attempts: 0,
            handed_out: 0,
            error: None,
        })
    }

    /// Reads items `from..` (one slice): an item that ended before this run's owner crashed
    /// (`runs resume`), or whose idempotency key succeeded before, is gathered at once; the
    /// others are prepared for the workers. Returns them, and how many rows were read.
    fn next_slice<T>(
        &mut self,
        items: &ItemTable,
        from: usize,
        tally: &mut Tally,
        prepare: &Prepare<T>,
    ) -> Result<(Vec<Ready<T>>, usize), StageError> {
        let rows = self.store.item_slice(items, from, SLICE)?;
        let keys = self.item_keys(&rows)?;
        let read = rows.len();
        let mut finished = self
            .store
            .finished_items(&self.stage.id, self.step, from..from + read)?;
        let mut fresh = vec![false; read];
        for (i, key) in keys.iter().enumerate() {
            let reused = match (finished.remove(&(from + i)), key) {
                (Some(rows), _) => Some(rows),
                (None, Some(k)) => self.store.recorded(&self.ctx.flow, &self.stage.id, k)?,
                (None, None) => None,
            };
            match reused {
                Some(reused) => tally.gathered.add(self.store, from + i, &reused)?,
                None => fresh[i] = true,
            }
        }
        let payloads = prepare(self.store, &rows, &fresh).map_err(|e| match items.len() {
            // One slice: computed before any call, as for a single call.
            n if n <= SLICE => StageError::from(e),
            n => StageError::Data(format!("items {from} to {} of {n}: {e}", from + read - 1)),
        })?;
        let prepared = payloads
            .into_iter()
            .zip(keys)
            .zip(rows.values)
            .enumerate()
            .filter_map(|(i, ((payload, key), row))| {
                let payload = payload?;
                let index = from + i;
                Some((
                    Job {
                        index,
                        key,
                        payload,
                    },
                    row,
                ))
            })
            .collect();
        Ok((prepared, read))
    }

    /// Records how item `index` ended: a success in the run's database (a resumed run reuses
    /// it) and under its key, its rows gathered; a failure counted (and kept, when a stage
    /// reads them).
    fn tally_end(
        &mut self,
        tally: &mut Tally,
        index: usize,
        key: Option<String>,
        row: Vec<Value>,
        done: retry::Finished<Rows>,
    ) {
        tally.attempts = tally.attempts.max(done.attempts);
        let recorded = match done.result {
            Ok(rows) => self.record_item(tally, index, key.as_deref(), &rows),
            Err(StageError::Cancelled) => {
                tally.cancelled = true;
                Ok(())
            }
            Err(error) => {
                tally.failed += 1;
                if tally.first_failure.as_ref().is_none_or(|(i, _)| index < *i) {
                    tally.first_failure = Some((index, error.to_string()));
                }
                match &mut tally.failed_rows {
                    Some((failed, shape)) => {
                        let kept = Rows {
                            values: vec![super::failed_row(index, &error, row)],
                            ..shape.clone()
                        };
                        failed.add(self.store, index, &kept)
                    }
                    None => Ok(()),
                }
                .map_err(StageError::from)
            }
        };
        if let Err(e) = recorded {
            tally.error.get_or_insert(e);
        }
    }

    fn record_item(
        &mut self,
        tally: &mut Tally,
        index: usize,
        key: Option<&str>,
        rows: &Rows,
    ) -> Result<(), StageError> {
        let stage = &self.stage.id;
        self.store
            .finish_item(stage, self.step, index, rows)
            .map_err(|e| format!("cannot record a finished item in the run database: {e}"))?;
        if let Some(k) = key {
            self.store
                .record(&self.ctx.flow, stage, k, rows)
                .map_err(|e| format!("cannot record the idempotency key `{k}`: {e}"))?;
        }
        tally.gathered.add(self.store, index, rows)?;
        Ok(())
    }

    /// Where the failed items go, and their columns: the failure's, then the input's.
    fn failed_gathering(&mut self, items: &ItemTable) -> Result<(Gathered, Rows), StageError> {
        super::no_failure_column(&self.stage.id, items.columns())?;
        let shape = Rows {
            columns: FAILED_COLUMNS
                .iter()
                .map(|(name, _)| name.to_string())
                .chain(items.columns().iter().cloned())
                .collect(),
            values: Vec::new(),
            types: FAILED_COLUMNS
                .iter()
                .map(|(_, ty)| *ty)
                .chain(items.types().iter().copied())
                .collect(),
        };
        let mut failed = Gathered::new(self.store);
        // Its columns, even when no item fails.
        failed.add(self.store, 0, &shape)?;
        Ok((failed, shape))
    }
}
