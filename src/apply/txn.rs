//! A transaction over the system: every step that changes something records its undo; on
//! failure (or if the transaction is dropped uncommitted) the undos run in reverse order.

use std::path::PathBuf;

use crate::system::DmName;
use crate::system::System;

/// One recorded undo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Undo {
    DetachLoop(PathBuf),
    RemoveDm(DmName),
    RemoveNode(PathBuf),
    RemoveDir(PathBuf),
    Unmount(PathBuf),
}

/// The undo log of one apply.
pub(crate) struct Txn<'a> {
    sys: &'a dyn System,
    undo: Vec<Undo>,
    done: bool,
}

impl<'a> Txn<'a> {
    pub(crate) fn new(sys: &'a dyn System) -> Self {
        Self {
            sys,
            undo: Vec::new(),
            done: false,
        }
    }

    pub(crate) fn record(&mut self, undo: Undo) {
        self.undo.push(undo);
    }

    /// Keeps everything done so far.
    pub(crate) fn commit(mut self) {
        self.done = true;
    }

    /// Undoes everything done so far, newest first; returns what could not be undone.
    pub(crate) fn rollback(mut self) -> Vec<String> {
        self.done = true;
        let mut failures = Vec::new();
        while let Some(u) = self.undo.pop() {
            if let Err(e) = self.run(&u) {
                failures.push(crate::error_chain(&e));
            }
        }
        failures
    }

    fn run(&self, u: &Undo) -> Result<(), crate::system::SysError> {
        let ok_if_gone = |r: Result<(), crate::system::SysError>| match r {
            Err(e) if e.is_not_found() => Ok(()),
            other => other,
        };
        match u {
            Undo::DetachLoop(p) => ok_if_gone(self.sys.loop_detach(p)),
            Undo::RemoveDm(n) => ok_if_gone(self.sys.dm_remove(n, false)),
            Undo::RemoveNode(p) => ok_if_gone(self.sys.remove_file(p)),
            // A directory another request now uses (it made its own inside, or mounted on it)
            // stays: leaving it is the undo's right outcome, as in teardown.
            Undo::RemoveDir(p) => match self.sys.remove_dir(p) {
                Err(e) if e.is_dir_in_use() => Ok(()),
                other => ok_if_gone(other),
            },
            Undo::Unmount(p) => self.sys.unmount(p),
        }
    }
}

impl Drop for Txn<'_> {
    fn drop(&mut self) {
        if !self.done {
            while let Some(u) = self.undo.pop() {
                let _ = self.run(&u);
            }
        }
    }
}
