//! Byte-range record locks (POSIX `fcntl` locks and open-file-description locks): the range
//! arithmetic of `struct flock` and the list of locks held on one file, with Linux's rules for
//! conflicts, splitting and merging.

use crate::abi::Errno;

/// The last byte a lock can cover (Linux's OFFSET_MAX): a lock "to end of file" ends here.
pub const OFFSET_MAX: i64 = i64::MAX;

/// Most records one file may hold; past it F_SETLK fails with ENOLCK (a guest cannot make
/// the Sentry allocate without bound by locking every other byte).
pub const MAX_RECORDS: usize = 1 << 14;

/// Read (shared) or write (exclusive).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Read,
    Write,
}

/// Who owns a record lock: a process's descriptor table (POSIX locks, Linux's `files_struct`
/// owner) or an open file description (OFD locks). Locks of one owner never conflict.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Owner {
    Posix(u64),
    Ofd(u64),
}

/// An inclusive byte range, `start <= end`, both in `0..=OFFSET_MAX`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Range {
    pub start: i64,
    pub end: i64,
}

impl Range {
    /// The range of a `struct flock` whose `l_whence` has already been turned into `base`
    /// (0, the file offset or the file size): Linux's `flock_to_posix_lock`.
    pub fn from_flock(base: i64, l_start: i64, l_len: i64) -> Result<Range, Errno> {
        let start = base.wrapping_add(l_start);
        if start < 0 {
            return Err(Errno::EINVAL);
        }
        if l_len > 0 {
            if l_len - 1 > OFFSET_MAX - start {
                return Err(Errno::EOVERFLOW);
            }
            Ok(Range { start, end: start + (l_len - 1) })
        } else if l_len < 0 {
            // l_len is negative and start >= 0: the sum cannot overflow.
            let new_start = start + l_len;
            if new_start < 0 {
                return Err(Errno::EINVAL);
            }
            Ok(Range { start: new_start, end: start - 1 })
        } else {
            Ok(Range { start, end: OFFSET_MAX })
        }
    }

    /// `l_start` and `l_len` reporting this range (0 length: to end of file).
    pub fn to_flock(self) -> (i64, i64) {
        let len = if self.end == OFFSET_MAX { 0 } else { self.end - self.start + 1 };
        (self.start, len)
    }

    pub fn overlaps(self, o: Range) -> bool {
        self.start <= o.end && o.start <= self.end
    }

    /// Overlapping or directly next to each other.
    fn touches(self, o: Range) -> bool {
        i128::from(self.start) <= i128::from(o.end) + 1
            && i128::from(o.start) <= i128::from(self.end) + 1
    }
}

/// One held lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record {
    pub owner: Owner,
    /// What F_GETLK reports as its holder: the locking process, or -1 for OFD locks.
    pub pid: i32,
    pub kind: Kind,
    pub range: Range,
}

/// The record locks on one file. Records of one owner never overlap each other.
#[derive(Default, Debug)]
pub struct RecordList {
    records: Vec<Record>,
}

impl RecordList {
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// The first lock of another owner that keeps `owner` from taking `kind` over `range`.
    pub fn conflict(&self, owner: Owner, kind: Kind, range: Range) -> Option<Record> {
        self.records
            .iter()
            .find(|r| {
                r.owner != owner
                    && r.range.overlaps(range)
                    && (kind == Kind::Write || r.kind == Kind::Write)
            })
            .copied()
    }

    /// Sets `owner`'s lock over `range` to `kind` (None: unlocks it), splitting and merging
    /// the owner's records as Linux does. Does not check conflicts.
    pub fn set(
        &mut self,
        owner: Owner,
        pid: i32,
        kind: Option<Kind>,
        range: Range,
    ) -> Result<(), Errno> {
        let mut merged = range;
        let mut kept = Vec::with_capacity(self.records.len() + 2);
        // Same-kind records touching the new one merge into it.
        let mut rest = Vec::new();
        for &r in &self.records {
            if r.owner != owner {
                kept.push(r);
            } else if Some(r.kind) == kind && r.range.touches(range) {
                merged.start = merged.start.min(r.range.start);
                merged.end = merged.end.max(r.range.end);
            } else {
                rest.push(r);
            }
        }
        // The owner's other records lose the part the new range covers.
        for r in rest {
            if !r.range.overlaps(range) {
                kept.push(r);
                continue;
            }
            if r.range.start < range.start {
                kept.push(Record {
                    range: Range { start: r.range.start, end: range.start - 1 },
                    ..r
                });
            }
            if r.range.end > range.end {
                kept.push(Record { range: Range { start: range.end + 1, end: r.range.end }, ..r });
            }
        }
        if let Some(kind) = kind {
            kept.push(Record { owner, pid, kind, range: merged });
        }
        if kept.len() > MAX_RECORDS && kept.len() > self.records.len() {
            return Err(Errno::ENOLCK);
        }
        self.records = kept;
        Ok(())
    }

    /// Drops every record of `owner`; whether there were any.
    pub fn remove_owner(&mut self, owner: Owner) -> bool {
        let before = self.records.len();
        self.records.retain(|r| r.owner != owner);
        before != self.records.len()
    }

    #[cfg(test)]
    fn of(&self, owner: Owner) -> Vec<(Kind, i64, i64)> {
        let mut v: Vec<_> = self
            .records
            .iter()
            .filter(|r| r.owner == owner)
            .map(|r| (r.kind, r.range.start, r.range.end))
            .collect();
        v.sort_by_key(|x| x.1);
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: Owner = Owner::Posix(1);
    const B: Owner = Owner::Posix(2);

    fn r(start: i64, end: i64) -> Range {
        Range { start, end }
    }

    #[test]
    fn flock_ranges_follow_linux() {
        assert_eq!(Range::from_flock(0, 10, 5), Ok(r(10, 14)));
        assert_eq!(Range::from_flock(0, 10, 0), Ok(r(10, OFFSET_MAX)));
        assert_eq!(Range::from_flock(0, 10, -5), Ok(r(5, 9)));
        assert_eq!(Range::from_flock(0, 10, -11), Err(Errno::EINVAL));
        assert_eq!(Range::from_flock(0, -1, 5), Err(Errno::EINVAL));
        assert_eq!(Range::from_flock(100, -50, 1), Ok(r(50, 50)));
        assert_eq!(Range::from_flock(0, OFFSET_MAX, 2), Err(Errno::EOVERFLOW));
        assert_eq!(Range::from_flock(0, 1, i64::MAX), Ok(r(1, OFFSET_MAX)));
        assert_eq!(Range::from_flock(0, 2, i64::MAX), Err(Errno::EOVERFLOW));
        assert_eq!(Range::from_flock(0, 0, i64::MIN), Err(Errno::EINVAL));
        assert_eq!(Range::from_flock(i64::MAX, i64::MAX, 1), Err(Errno::EINVAL));
        assert_eq!(r(10, OFFSET_MAX).to_flock(), (10, 0));
        assert_eq!(r(10, 14).to_flock(), (10, 5));
    }

    #[test]
    fn unlocking_the_middle_splits_and_same_kinds_merge() {
        let mut l = RecordList::default();
        l.set(A, 1, Some(Kind::Write), r(0, 99)).unwrap();
        l.set(A, 1, None, r(40, 59)).unwrap();
        assert_eq!(l.of(A), vec![(Kind::Write, 0, 39), (Kind::Write, 60, 99)]);
        l.set(A, 1, Some(Kind::Write), r(40, 59)).unwrap();
        assert_eq!(l.of(A), vec![(Kind::Write, 0, 99)]);
        l.set(A, 1, Some(Kind::Read), r(10, 19)).unwrap();
        assert_eq!(l.of(A), vec![(Kind::Write, 0, 9), (Kind::Read, 10, 19), (Kind::Write, 20, 99)]);
        l.set(A, 1, Some(Kind::Write), r(100, 109)).unwrap();
        assert_eq!(l.of(A).last(), Some(&(Kind::Write, 20, 109)));
    }

    #[test]
    fn conflicts_need_another_owner_and_a_writer() {
        let mut l = RecordList::default();
        l.set(A, 1, Some(Kind::Read), r(0, 9)).unwrap();
        assert_eq!(l.conflict(B, Kind::Read, r(0, 9)), None);
        assert_eq!(l.conflict(A, Kind::Write, r(0, 9)), None);
        assert_eq!(l.conflict(B, Kind::Write, r(9, 20)).map(|c| c.owner), Some(A));
        assert_eq!(l.conflict(B, Kind::Write, r(10, 20)), None);
        assert!(l.remove_owner(A));
        assert!(l.is_empty());
    }

    #[test]
    fn whole_range_locks_at_the_end_of_the_offsets() {
        let mut l = RecordList::default();
        l.set(A, 1, Some(Kind::Write), r(0, OFFSET_MAX)).unwrap();
        l.set(A, 1, Some(Kind::Write), r(OFFSET_MAX, OFFSET_MAX)).unwrap();
        l.set(A, 1, None, r(5, OFFSET_MAX)).unwrap();
        assert_eq!(l.of(A), vec![(Kind::Write, 0, 4)]);
    }
}
