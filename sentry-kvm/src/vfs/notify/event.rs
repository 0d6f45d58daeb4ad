//! inotify events as a reader sees them: the mask bits of the ABI, the packed
//! `struct inotify_event` records read(2) returns, and an instance's bounded queue, which folds
//! an event identical to the last one queued into it and ends with one overflow event when
//! full, as Linux's does.

use std::collections::VecDeque;

pub const IN_ACCESS: u32 = 0x1;
pub const IN_MODIFY: u32 = 0x2;
pub const IN_ATTRIB: u32 = 0x4;
pub const IN_CLOSE_WRITE: u32 = 0x8;
pub const IN_CLOSE_NOWRITE: u32 = 0x10;
pub const IN_OPEN: u32 = 0x20;
pub const IN_MOVED_FROM: u32 = 0x40;
pub const IN_MOVED_TO: u32 = 0x80;
pub const IN_CREATE: u32 = 0x100;
pub const IN_DELETE: u32 = 0x200;
pub const IN_DELETE_SELF: u32 = 0x400;
pub const IN_MOVE_SELF: u32 = 0x800;
/// Every event a watch can ask for.
pub const IN_ALL_EVENTS: u32 = 0xfff;

pub const IN_UNMOUNT: u32 = 0x2000;
pub const IN_Q_OVERFLOW: u32 = 0x4000;
pub const IN_IGNORED: u32 = 0x8000;

pub const IN_ONLYDIR: u32 = 0x0100_0000;
pub const IN_DONT_FOLLOW: u32 = 0x0200_0000;
pub const IN_EXCL_UNLINK: u32 = 0x0400_0000;
pub const IN_MASK_CREATE: u32 = 0x1000_0000;
pub const IN_MASK_ADD: u32 = 0x2000_0000;
pub const IN_ISDIR: u32 = 0x4000_0000;
pub const IN_ONESHOT: u32 = 0x8000_0000;

/// The bits inotify_add_watch knows; a mask with any other is refused.
pub const KNOWN_BITS: u32 = IN_ALL_EVENTS
    | IN_UNMOUNT
    | IN_Q_OVERFLOW
    | IN_IGNORED
    | IN_ONLYDIR
    | IN_DONT_FOLLOW
    | IN_EXCL_UNLINK
    | IN_MASK_CREATE
    | IN_MASK_ADD
    | IN_ISDIR
    | IN_ONESHOT;

/// The size of `struct inotify_event` without its name.
pub const HEADER: usize = 16;

/// One queued event. `name` is set for events a directory watch reports about a child.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub wd: i32,
    pub mask: u32,
    pub cookie: u32,
    pub name: Vec<u8>,
}

impl Event {
    /// The event reported when events were lost.
    pub fn overflow() -> Event {
        Event { wd: -1, mask: IN_Q_OVERFLOW, cookie: 0, name: Vec::new() }
    }

    /// The name field's length: the name, its NUL and padding to a multiple of the header
    /// size (none without a name).
    fn name_len(&self) -> usize {
        if self.name.is_empty() { 0 } else { (self.name.len() + 1).div_ceil(HEADER) * HEADER }
    }

    /// Bytes the record takes in a read.
    pub fn size(&self) -> usize {
        HEADER + self.name_len()
    }

    /// Appends the record as read(2) returns it.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let len = self.name_len();
        out.extend_from_slice(&self.wd.to_le_bytes());
        out.extend_from_slice(&self.mask.to_le_bytes());
        out.extend_from_slice(&self.cookie.to_le_bytes());
        out.extend_from_slice(&(len as u32).to_le_bytes());
        out.extend_from_slice(&self.name);
        out.resize(out.len() + len - self.name.len(), 0);
    }
}

/// An instance's pending events, at most `max` of them plus one overflow event.
pub struct EventQueue {
    events: VecDeque<Event>,
    max: usize,
    /// Total record size of `events` (what FIONREAD reports).
    bytes: usize,
}

impl EventQueue {
    pub fn new(max: usize) -> Self {
        EventQueue { events: VecDeque::new(), max, bytes: 0 }
    }

    /// Queues `ev`: folded into the last event if identical, the overflow event in its place
    /// when the queue is full. Returns whether the queue changed.
    pub fn push(&mut self, ev: Event) -> bool {
        self.push_within(ev, true)
    }

    /// [`EventQueue::push`], treating the queue as full without `room` (the sandbox's budget
    /// for queued events is spent).
    pub fn push_within(&mut self, ev: Event, room: bool) -> bool {
        let ev = if self.events.len() >= self.max || !room {
            if self.events.back().is_some_and(|l| l.mask == IN_Q_OVERFLOW) {
                return false;
            }
            Event::overflow()
        } else if self.events.back() == Some(&ev) {
            return false;
        } else {
            ev
        };
        self.bytes += ev.size();
        self.events.push_back(ev);
        true
    }

    /// Takes whole records from the front that fit in `cap` bytes: EINVAL when not even the
    /// first fits, an empty vector when there is nothing.
    pub fn take(&mut self, cap: usize) -> Result<Vec<u8>, crate::abi::Errno> {
        let mut out = Vec::new();
        while let Some(ev) = self.events.front() {
            if out.len() + ev.size() > cap {
                if out.is_empty() {
                    return Err(crate::abi::Errno::EINVAL);
                }
                break;
            }
            ev.encode(&mut out);
            self.bytes -= ev.size();
            self.events.pop_front();
        }
        Ok(out)
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abi::Errno;

    fn ev(wd: i32, mask: u32, name: &str) -> Event {
        Event { wd, mask, cookie: 0, name: name.as_bytes().to_vec() }
    }

    #[test]
    fn records_pad_names_to_sixteen_bytes_with_nuls() {
        let mut out = Vec::new();
        ev(3, IN_CREATE, "abc").encode(&mut out);
        assert_eq!(out.len(), 32);
        assert_eq!(&out[0..4], &3i32.to_le_bytes());
        assert_eq!(&out[4..8], &IN_CREATE.to_le_bytes());
        assert_eq!(&out[12..16], &16u32.to_le_bytes());
        assert_eq!(&out[16..19], b"abc");
        assert!(out[19..].iter().all(|&b| b == 0));
        // A 15-byte name and its NUL fill 16 bytes; 16 bytes need 32.
        assert_eq!(ev(1, IN_OPEN, "fifteen-chars-x").size(), 32);
        assert_eq!(ev(1, IN_OPEN, "sixteen-chars-xx").size(), 48);
        // No name, no name field.
        let mut out = Vec::new();
        ev(-1, IN_Q_OVERFLOW, "").encode(&mut out);
        assert_eq!(out, [0xff, 0xff, 0xff, 0xff, 0, 0x40, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn identical_consecutive_events_fold_and_others_do_not() {
        let mut q = EventQueue::new(100);
        assert!(q.push(ev(1, IN_MODIFY, "f")));
        assert!(!q.push(ev(1, IN_MODIFY, "f")));
        assert!(q.push(ev(1, IN_MODIFY, "g")));
        assert!(q.push(ev(1, IN_MODIFY, "f")));
        let mut moved = ev(1, IN_MOVED_FROM, "f");
        moved.cookie = 7;
        assert!(q.push(moved.clone()));
        moved.cookie = 8;
        assert!(q.push(moved));
        assert_eq!(q.bytes(), 5 * 32);
        let all = q.take(4096).unwrap();
        assert_eq!(all.len(), 5 * 32);
        assert!(q.is_empty());
        // Once read, the same event queues again.
        assert!(q.push(ev(1, IN_MODIFY, "f")));
    }

    #[test]
    fn a_full_queue_ends_with_one_overflow_event() {
        let mut q = EventQueue::new(3);
        for i in 0..10 {
            q.push(ev(1, IN_CREATE, &format!("f{i}")));
        }
        let mut out = q.take(4096).unwrap();
        assert_eq!(out.len(), 3 * 32 + 16);
        let last = out.split_off(3 * 32);
        assert_eq!(&last[0..4], &(-1i32).to_le_bytes());
        assert_eq!(&last[4..8], &IN_Q_OVERFLOW.to_le_bytes());
        assert_eq!(q.bytes(), 0);
    }

    #[test]
    fn without_room_an_event_becomes_the_overflow_event() {
        let mut q = EventQueue::new(10);
        assert!(q.push_within(ev(1, IN_CREATE, "a"), false));
        assert!(!q.push_within(ev(1, IN_CREATE, "b"), false));
        assert_eq!(q.bytes(), 16);
    }

    #[test]
    fn reads_take_whole_records_and_refuse_a_buffer_too_small_for_the_first() {
        let mut q = EventQueue::new(10);
        q.push(ev(1, IN_CREATE, "a"));
        q.push(ev(1, IN_DELETE, "a"));
        assert_eq!(q.take(31), Err(Errno::EINVAL));
        assert_eq!(q.take(63).unwrap().len(), 32);
        assert_eq!(q.bytes(), 32);
        assert_eq!(q.take(32).unwrap().len(), 32);
        assert_eq!(q.take(32).unwrap().len(), 0);
    }
}
