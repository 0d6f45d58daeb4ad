//! BSD `flock` locks on one file: whole-file, shared or exclusive, one per open file
//! description.

use super::record::Kind;

#[derive(Default, Debug)]
pub struct FlockList {
    /// (open file description id, kind)
    held: Vec<(u64, Kind)>,
}

impl FlockList {
    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    /// The lock the description `file_id` holds, if any.
    pub fn held(&self, file_id: u64) -> Option<Kind> {
        self.held.iter().find(|h| h.0 == file_id).map(|h| h.1)
    }

    /// Whether another description's lock keeps `file_id` from taking `kind`.
    pub fn conflicts(&self, file_id: u64, kind: Kind) -> bool {
        self.held.iter().any(|&(id, k)| id != file_id && (kind == Kind::Write || k == Kind::Write))
    }

    pub fn add(&mut self, file_id: u64, kind: Kind) {
        self.held.retain(|h| h.0 != file_id);
        self.held.push((file_id, kind));
    }

    /// Drops the lock of `file_id`; whether it had one.
    pub fn remove(&mut self, file_id: u64) -> bool {
        let before = self.held.len();
        self.held.retain(|h| h.0 != file_id);
        before != self.held.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_locks_coexist_and_exclusive_ones_do_not() {
        let mut l = FlockList::default();
        l.add(1, Kind::Read);
        assert!(!l.conflicts(2, Kind::Read));
        assert!(l.conflicts(2, Kind::Write));
        assert!(!l.conflicts(1, Kind::Write), "a description never conflicts with itself");
        l.add(1, Kind::Write);
        assert_eq!(l.held(1), Some(Kind::Write));
        assert!(l.conflicts(2, Kind::Read));
        assert!(l.remove(1));
        assert!(!l.remove(1));
        assert!(l.is_empty());
    }
}
