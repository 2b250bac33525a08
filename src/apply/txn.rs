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

#[cfg(all(test, feature = "fake"))]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::path::Path;

    use super::*;
    use crate::system::{FakeSystem, Op};

    fn dirs(sys: &FakeSystem) -> Vec<PathBuf> {
        sys.snapshot().dirs.into_iter().collect()
    }

    #[test]
    fn a_transaction_dropped_uncommitted_undoes_its_steps() {
        let sys = FakeSystem::new();
        sys.add_dir("/run");
        let before = dirs(&sys);
        {
            let mut txn = Txn::new(&sys);
            sys.make_dir(Path::new("/run/a")).unwrap();
            txn.record(Undo::RemoveDir("/run/a".into()));
        }
        assert_eq!(dirs(&sys), before);
        // Committed, it stays.
        let txn = {
            let mut txn = Txn::new(&sys);
            sys.make_dir(Path::new("/run/a")).unwrap();
            txn.record(Undo::RemoveDir("/run/a".into()));
            txn
        };
        txn.commit();
        assert!(dirs(&sys).contains(&PathBuf::from("/run/a")));
    }

    #[test]
    fn a_rollback_leaves_what_is_gone_or_in_use_and_reports_the_rest() {
        let sys = FakeSystem::new();
        sys.add_dir("/run");
        sys.add_dir("/run/a");
        sys.add_dir("/run/a/b");
        sys.add_dir("/run/c");
        let mut txn = Txn::new(&sys);
        // Gone already: fine. In use (another request made its own directory inside): left.
        txn.record(Undo::RemoveNode("/dev/mapper/gone".into()));
        txn.record(Undo::RemoveDir("/run/a".into()));
        assert!(txn.rollback().is_empty());
        assert!(dirs(&sys).contains(&PathBuf::from("/run/a")));
        // Any other failure is reported.
        sys.fail_nth(Op::RemoveDir, 0, nix::libc::EIO);
        let mut txn = Txn::new(&sys);
        txn.record(Undo::RemoveDir("/run/c".into()));
        let failures = txn.rollback();
        assert_eq!(failures.len(), 1, "{failures:?}");
    }
}
