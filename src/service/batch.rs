//! Several Storages in one go, all or nothing, on the client side: each is sent in order with
//! `AddStorage`; when one fails, the ones this call added are removed again, last first, and
//! the error says which one failed and what became of the others. It does not care what
//! shape the Storages have (a volume, a `dmverity` layer, an overlay): the daemon decides.
//!
//! Every Storage this call added is removed on failure: the daemon counts each add as one
//! claim (as the Kata agent counts storages), so removing one that was already there only
//! takes back this call's claim — another container sharing the layer keeps it. A Storage
//! whose own add failed is not removed: refused, it left nothing and took no claim.

use super::client::{ClientError, VolumeClient};
use super::proto::kata_volume as pb;
use crate::request::Storage;

/// Why [`VolumeClient::add_storages`] failed: which Storage, why, and what was undone.
#[derive(Debug, thiserror::Error)]
#[error(
    "Storage {index} of {total} (mount point {mount_point}) failed{}",
    rollback_note(.removed, .kept, .not_removed)
)]
pub struct AddStoragesError {
    /// Which Storage failed, counted from 1.
    pub index: usize,
    /// How many were to be added.
    pub total: usize,
    /// The failing Storage's mount point.
    pub mount_point: String,
    /// Why it failed.
    #[source]
    pub error: ClientError,
    /// Mount points added by this call and removed again, in removal order (last first).
    pub removed: Vec<String>,
    /// Mount points that were already there before this call: left as they were.
    pub kept: Vec<String>,
    /// Mount points added by this call whose removal failed: still mounted.
    pub not_removed: Vec<(String, ClientError)>,
}

fn rollback_note(
    removed: &[String],
    kept: &[String],
    not_removed: &[(String, ClientError)],
) -> String {
    let mut notes = Vec::new();
    match removed.len() {
        0 if not_removed.is_empty() => notes.push("nothing was added before it".to_owned()),
        0 => {}
        1 => notes.push("the 1 Storage added before it was removed".to_owned()),
        n => notes.push(format!("the {n} Storages added before it were removed")),
    }
    match kept.len() {
        0 => {}
        1 => notes.push("1 already there before was left as it was".to_owned()),
        n => notes.push(format!("{n} already there before were left as they were")),
    }
    for (mp, e) in not_removed {
        notes.push(format!(
            "removing {mp} failed, so it is still mounted ({e})"
        ));
    }
    format!(" ({})", notes.join("; "))
}

/// The wire message of a Storage.
pub fn storage_message(s: &Storage) -> pb::Storage {
    pb::Storage {
        driver: s.driver.clone(),
        driver_options: s.driver_options.clone(),
        source: s.source.clone(),
        fstype: s.fstype.clone(),
        options: s.options.clone(),
        mount_point: s.mount_point.clone(),
        ..Default::default()
    }
}

impl VolumeClient {
    /// Adds `storages` in order, all or nothing: on the first failure, removes (last first)
    /// the ones this call added, and returns the failure. On success, the daemon's answer
    /// for each, in order.
    pub async fn add_storages(
        &mut self,
        storages: &[Storage],
    ) -> Result<Vec<pb::Volume>, AddStoragesError> {
        let mut answers: Vec<pb::Volume> = Vec::with_capacity(storages.len());
        for (i, storage) in storages.iter().enumerate() {
            match self.add_storage(&storage_message(storage)).await {
                Ok(v) => answers.push(v),
                Err(error) => {
                    let mut failure = AddStoragesError {
                        index: i + 1,
                        total: storages.len(),
                        mount_point: storage.mount_point.clone(),
                        error,
                        removed: Vec::new(),
                        kept: Vec::new(),
                        not_removed: Vec::new(),
                    };
                    self.roll_back(&answers, &mut failure).await;
                    return Err(failure);
                }
            }
        }
        Ok(answers)
    }

    async fn roll_back(&mut self, answers: &[pb::Volume], failure: &mut AddStoragesError) {
        for v in answers.iter().rev() {
            match self.remove_storage(&v.mount_point).await {
                Ok(_) => failure.removed.push(v.mount_point.clone()),
                Err(e) => failure.not_removed.push((v.mount_point.clone(), e)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::rollback_note;

    #[test]
    fn the_note_says_what_was_undone() {
        let mps = |n: usize| (0..n).map(|i| format!("/m{i}")).collect::<Vec<_>>();
        assert_eq!(
            rollback_note(&[], &[], &[]),
            " (nothing was added before it)"
        );
        assert_eq!(
            rollback_note(&[], &mps(2), &[]),
            " (nothing was added before it; 2 already there before were left as they were)"
        );
        assert_eq!(
            rollback_note(&mps(3), &mps(1), &[]),
            " (the 3 Storages added before it were removed; 1 already there before was left \
             as it was)"
        );
    }
}
