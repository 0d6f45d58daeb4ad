//! The files open by path, by inode, as inotify needs them: a file whose last name goes while
//! it is open is reported gone only when its last description closes, and an open file
//! renamed reports under its new name, as on Linux.

use crate::sync::{Mutex, MutexGuard};
use std::collections::HashMap;

use crate::vfs::inode::InodeKey;

/// A directory entry: the directory's identity and the name in it.
pub type Place = (InodeKey, Vec<u8>);

/// Places one file tracks renames for; past that, descriptions opened by further names keep
/// reporting under the name they were opened by (a bound against a hostile program).
const MAX_PLACES: usize = 64;

#[derive(Default)]
struct OpenFile {
    descriptions: usize,
    unlinked: bool,
    /// The names descriptions were opened by and where renames have taken them since.
    places: Vec<(Place, Place)>,
}

#[derive(Default)]
pub struct OpenFiles {
    files: Mutex<HashMap<InodeKey, OpenFile>>,
}

impl OpenFiles {
    fn files(&self) -> MutexGuard<'_, HashMap<InodeKey, OpenFile>> {
        self.files.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A description of `key` was opened (by `place`, for a file that is not a directory).
    pub fn opened(&self, key: InodeKey, place: Option<Place>) {
        let mut files = self.files();
        let f = files.entry(key).or_default();
        f.descriptions += 1;
        if let Some(p) = place
            && f.places.len() < MAX_PLACES
            && !f.places.iter().any(|(opened, _)| *opened == p)
        {
            f.places.push((p.clone(), p));
        }
    }

    /// A description of `key` closed: whether that removes the file (it was the last, and the
    /// file's last name had gone).
    pub fn closed(&self, key: InodeKey) -> bool {
        let mut files = self.files();
        let Some(f) = files.get_mut(&key) else { return false };
        f.descriptions = f.descriptions.saturating_sub(1);
        if f.descriptions > 0 {
            return false;
        }
        files.remove(&key).is_some_and(|f| f.unlinked)
    }

    /// The last name of `key` went: whether the file is gone now (no description open).
    pub fn unlinked(&self, key: InodeKey) -> bool {
        match self.files().get_mut(&key) {
            Some(f) => {
                f.unlinked = true;
                false
            }
            None => true,
        }
    }

    /// A rename moved `key` from `from` to `to`.
    pub fn moved(&self, key: InodeKey, from: &Place, to: &Place) {
        if let Some(f) = self.files().get_mut(&key) {
            for (_, now) in f.places.iter_mut().filter(|(_, now)| now == from) {
                *now = to.clone();
            }
        }
    }

    /// Where a description of `key` opened by `opened` is now.
    pub fn place(&self, key: InodeKey, opened: Place) -> Place {
        let files = self.files();
        let now = files.get(&key).and_then(|f| f.places.iter().find(|(o, _)| *o == opened));
        match now {
            Some((_, now)) => now.clone(),
            None => opened,
        }
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.files().is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn place(dir: u64, name: &str) -> Place {
        ((1, dir), name.as_bytes().to_vec())
    }

    #[test]
    fn renames_move_the_places_descriptions_were_opened_by() {
        let files = OpenFiles::default();
        let key = (1, 10);
        files.opened(key, Some(place(1, "a")));
        files.moved(key, &place(1, "a"), &place(2, "b"));
        files.moved(key, &place(2, "b"), &place(2, "c"));
        assert_eq!(files.place(key, place(1, "a")), place(2, "c"));
        // A name no description was opened by stays as it is.
        assert_eq!(files.place(key, place(1, "x")), place(1, "x"));
        assert!(!files.closed(key));
        assert!(files.is_empty());
    }

    #[test]
    fn a_file_unlinked_while_open_goes_with_its_last_description() {
        let files = OpenFiles::default();
        let key = (1, 10);
        files.opened(key, None);
        files.opened(key, None);
        assert!(!files.unlinked(key));
        assert!(!files.closed(key));
        assert!(files.closed(key));
        assert!(files.unlinked((1, 11)), "a file not open goes at once");
        assert!(files.is_empty());
    }

    #[test]
    fn places_are_bounded() {
        let files = OpenFiles::default();
        let key = (1, 10);
        for i in 0..1000 {
            files.opened(key, Some(place(1, &format!("n{i}"))));
        }
        assert_eq!(files.files().get(&key).map(|f| f.places.len()), Some(MAX_PLACES));
    }
}
