//! Refused entries, logged once: a daemon reads every entry on every pass, and a bad one that stays would
//! otherwise fill the log with the same line.

use std::collections::BTreeMap;

/// The refusals already reported, by key (an entry's ID) with their reason.
#[derive(Debug, Default)]
pub struct Refusals {
    reported: BTreeMap<String, String>,
}

impl Refusals {
    /// Takes every refusal of this pass, `(key, reason)`, and returns those to report: a key refused for the
    /// first time or for another reason than before. A key absent from `current` is forgotten, so that it is
    /// reported again if it comes back.
    pub fn update<K, R>(&mut self, current: impl IntoIterator<Item = (K, R)>) -> Vec<(String, String)>
    where
        K: Into<String>,
        R: Into<String>,
    {
        let current: BTreeMap<String, String> = current.into_iter().map(|(k, r)| (k.into(), r.into())).collect();
        let new = current
            .iter()
            .filter(|(key, reason)| self.reported.get(*key) != Some(*reason))
            .map(|(key, reason)| (key.clone(), reason.clone()))
            .collect();
        self.reported = current;
        new
    }
}

#[cfg(test)]
mod tests {
    use super::Refusals;

    #[test]
    fn each_key_and_reason_is_reported_once_until_it_changes_or_goes() {
        let mut refusals = Refusals::default();
        assert_eq!(refusals.update([("..", "bad ID"), ("x", "no chart")]).len(), 2);
        for _ in 0..100 {
            assert!(refusals.update([("..", "bad ID"), ("x", "no chart")]).is_empty());
        }
        // Another reason is news; so is a key that went and came back.
        assert_eq!(refusals.update([("..", "bad ID"), ("x", "bad values")]), [("x".into(), "bad values".into())]);
        assert!(refusals.update([("x", "bad values")]).is_empty());
        assert_eq!(refusals.update([("..", "bad ID"), ("x", "bad values")]), [("..".into(), "bad ID".into())]);
        assert!(refusals.update(Vec::<(String, String)>::new()).is_empty());
    }
}
