//! `--userns auto`, when the container is made: a range of host ids of its own (taken from the
//! store of ranges, under its lock) becomes its user namespace's maps. Its record exists by
//! then, so the range is never taken for a free one; `rm` (or a run that fails) frees it.

use anyhow::Result;

use crate::kernel::namespaces::{IdMap, Kind};
use crate::model::spec::ContainerSpec;
use crate::store::idranges;
use crate::store::state::Store;

/// The spec with its user namespace mapped onto a range of its own, when it asks for one.
pub fn give_ids(spec: &ContainerSpec, store: &Store) -> Result<ContainerSpec> {
    let Some(size) = spec.auto_ids else {
        return Ok(spec.clone());
    };
    let range = idranges::allocate(&store.dir(&spec.id), size)?;
    let mut spec = spec.clone();
    let map = |outside| {
        vec![IdMap {
            inside: 0,
            outside,
            count: range.size,
        }]
    };
    spec.setup.uid_mappings = map(range.uid);
    spec.setup.gid_mappings = map(range.gid);
    if !spec.setup.namespaces.creates(Kind::User) {
        spec.setup.namespaces.new.push(Kind::User);
    }
    Ok(spec)
}

/// `start` of an exited container made with `--userns auto`: the range its saved maps name is
/// taken again under the lock (none, or maps that are not one of our ranges: nothing to do).
pub fn keep_ids(spec: &ContainerSpec, store: &Store) -> Result<()> {
    let (uids, gids) = (&spec.setup.uid_mappings, &spec.setup.gid_mappings);
    let ([u], [g]) = (uids.as_slice(), gids.as_slice()) else {
        return Ok(());
    };
    if u.inside != 0 || g.inside != 0 || u.count != g.count {
        return Ok(());
    }
    let range = idranges::Range {
        uid: u.outside,
        gid: g.outside,
        size: u.count,
    };
    idranges::claim(&store.dir(&spec.id), range)
}

/// Frees the range the container holds (none: nothing to do).
pub fn free_ids(store: &Store, id: &str) {
    if let Err(e) = idranges::release(&store.dir(id)) {
        say!("minibox: container {id}: freeing its user namespace's ids: {e:#}");
    }
}
