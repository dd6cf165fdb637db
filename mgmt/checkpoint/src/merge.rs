//! Rolling checkpoints: [`merge`] folds a child into its full parent, giving one full image
//! equivalent to applying the child on the parent, so only the newest N images need be kept.

use crate::error::WriteError;
use crate::manifest::Identity;
use crate::reader::Reader;
use crate::record::StateKind;
use crate::writer::{CheckpointWriter, Keys, Signer};
use alloc::vec::Vec;

/// Merges `child` into its full `parent` into a new full image under `keys` (fresh, like any
/// checkpoint's). The result is the child's checkpoint (domain, epoch, state) with every page,
/// and takes the parent's place in the chain: its parent is the parent's parent.
///
/// # Errors
///
/// When `parent` is not full or not `child`'s parent, a record does not authenticate, or the
/// signer refuses.
pub fn merge<S: Signer>(
    parent: &Reader<'_, '_>,
    child: &Reader<'_, '_>,
    keys: &Keys,
    signer: &mut S,
) -> Result<Vec<u8>, WriteError<S::Error>> {
    let (p, c) = (
        &parent.image().manifest.identity,
        &child.image().manifest.identity,
    );
    if !p.full {
        return Err(WriteError::Merge("the parent is not a full image"));
    }
    if c.parent != Some(parent.image().digest()) {
        return Err(WriteError::Merge("the child's parent is not this parent"));
    }
    if c.memory_bytes != p.memory_bytes || c.domain_id != p.domain_id {
        return Err(WriteError::Merge(
            "parent and child are of different domains",
        ));
    }
    let mut w = CheckpointWriter::new(
        Identity {
            parent: p.parent,
            supersedes: Some(child.image().digest()),
            full: true,
            ..c.clone()
        },
        keys,
    );
    for index in 0..child.image().manifest.pages() {
        let page = match child.page(index).map_err(WriteError::Read)? {
            Some(page) => page,
            None => parent
                .page(index)
                .map_err(WriteError::Read)?
                .ok_or(WriteError::Merge("the full parent lacks a page"))?,
        };
        w.page(index, &page.bytes())?;
    }
    for kind in [StateKind::Vcpu, StateKind::Channels, StateKind::Vtpm] {
        if let Some(blob) = child.state(kind).map_err(WriteError::Read)? {
            w.state(kind, &blob)?;
        }
    }
    w.finish(signer)
}
