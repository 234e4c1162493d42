//! Who knows whom. WhatsApp tells an account's device-list changes to its own devices and
//! to the accounts that know it, not to everyone online; a server that told everyone
//! would make each client learn every other account's LID, and a test of many sessions
//! would measure that instead of the sessions. An account knows another once it asked
//! about it (usync, prekey fetch), messaged it or was messaged by it, or shares a group.

use std::collections::{HashMap, HashSet};

#[derive(Default)]
pub struct Contacts {
    /// By phone: the phones of the accounts that know it.
    known_by: HashMap<String, HashSet<String>>,
}

impl Contacts {
    /// `who` now knows `of`.
    pub fn learn(&mut self, who: &str, of: &str) {
        if who == of {
            return;
        }
        self.known_by.entry(of.to_owned()).or_default().insert(who.to_owned());
    }

    /// The phones of the accounts that know `phone`.
    pub fn known_by(&self, phone: &str) -> impl Iterator<Item = &str> {
        self.known_by.get(phone).into_iter().flatten().map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn knowing_is_one_way_and_never_of_oneself() {
        let mut c = Contacts::default();
        c.learn("1", "2");
        c.learn("1", "2");
        c.learn("3", "3");
        assert_eq!(c.known_by("2").collect::<Vec<_>>(), vec!["1"]);
        assert_eq!(c.known_by("1").count(), 0);
        assert_eq!(c.known_by("3").count(), 0);
    }
}
