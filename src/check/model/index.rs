//! What a workspace defines: flows, activities and `run flow` statements, across its files.

use crate::source::FileId;
use crate::syntax::ast::{Activity, Flow, Item, Pool, RunFlow, Test};
use crate::workspace::Workspace;
use std::collections::BTreeMap;

pub struct Def<'w, T> {
    pub file: FileId,
    pub node: &'w T,
}

// Not derived: a derive would ask `T: Copy`, but a `Def` only holds a reference.
impl<T> Clone for Def<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Def<'_, T> {}

#[derive(Default)]
pub struct Index<'w> {
    pub flows: Vec<Def<'w, Flow>>,
    pub activities: Vec<Def<'w, Activity>>,
    pub runs: Vec<Def<'w, RunFlow>>,
    /// Every version of each flow name, in workspace order.
    pub flows_by_name: BTreeMap<&'w str, Vec<Def<'w, Flow>>>,
    /// The first definition of each activity name.
    pub activity_by_name: BTreeMap<&'w str, Def<'w, Activity>>,
    pub pools: Vec<Def<'w, Pool>>,
    /// The first definition of each pool name.
    pub pool_by_name: BTreeMap<&'w str, Def<'w, Pool>>,
    /// `test` items, in workspace order.
    pub tests: Vec<Def<'w, Test>>,
}

impl<'w> Index<'w> {
    pub fn new(workspace: &'w Workspace) -> Self {
        Index::of_items(workspace.parsed.iter().enumerate().flat_map(|(i, parsed)| {
            let file = FileId(i as u32);
            parsed.ast.items.iter().map(move |item| (file, item))
        }))
    }

    /// The index of items given in workspace order (files in order, each file's items in
    /// order), whether full trees or outlines.
    pub fn of_items(items: impl Iterator<Item = (FileId, &'w Item)>) -> Self {
        let mut index = Index::default();
        for (file, item) in items {
            match item {
                Item::Flow(node) => index.flows.push(Def { file, node }),
                Item::Activity(node) => index.activities.push(Def { file, node }),
                Item::Run(node) => index.runs.push(Def { file, node }),
                Item::Pool(node) => index.pools.push(Def { file, node }),
                Item::Test(node) => index.tests.push(Def { file, node }),
            }
        }
        for def in &index.flows {
            index
                .flows_by_name
                .entry(&def.node.name.name)
                .or_default()
                .push(*def);
        }
        for def in &index.activities {
            index
                .activity_by_name
                .entry(&def.node.name.name)
                .or_insert(*def);
        }
        for def in &index.pools {
            index
                .pool_by_name
                .entry(&def.node.name.name)
                .or_insert(*def);
        }
        index
    }

    /// The flow a reference means: the given version, or the highest one.
    pub fn flow(&self, name: &str, version: Option<u32>) -> Option<Def<'w, Flow>> {
        let versions = self.flows_by_name.get(name)?;
        match version {
            Some(v) => versions
                .iter()
                .find(|d| d.node.version.as_ref().map(|x| x.value) == Some(v))
                .copied(),
            None => versions
                .iter()
                .max_by_key(|d| d.node.version.as_ref().map_or(0, |x| x.value))
                .copied(),
        }
    }

    pub fn flow_names(&self) -> impl Iterator<Item = &'w str> + '_ {
        self.flows_by_name.keys().copied()
    }

    pub fn activity_names(&self) -> impl Iterator<Item = &'w str> + '_ {
        self.activity_by_name.keys().copied()
    }
}
