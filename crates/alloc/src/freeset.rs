//! A set of free addresses kept as disjoint intervals, so that taking the lowest free
//! address, taking a given one and giving one back are all O(log n), and IPv6 pools are never
//! enumerated.

use std::collections::BTreeMap;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FreeSet {
    /// Interval start → inclusive end; intervals never touch or overlap.
    intervals: BTreeMap<u128, u128>,
}

impl FreeSet {
    /// Every address from `start` to `end`, inclusive.
    pub fn full(start: u128, end: u128) -> Self {
        FreeSet {
            intervals: BTreeMap::from([(start, end)]),
        }
    }

    pub fn first(&self) -> Option<u128> {
        self.intervals.first_key_value().map(|(start, _)| *start)
    }

    pub fn contains(&self, x: u128) -> bool {
        self.intervals
            .range(..=x)
            .next_back()
            .is_some_and(|(_, end)| x <= *end)
    }

    /// Removes `x`; false when it was not free.
    pub fn take(&mut self, x: u128) -> bool {
        let Some((&start, &end)) = self.intervals.range(..=x).next_back() else {
            return false;
        };
        if x > end {
            return false;
        }
        self.intervals.remove(&start);
        if start < x {
            self.intervals.insert(start, x - 1);
        }
        if x < end {
            self.intervals.insert(x + 1, end);
        }
        true
    }

    /// Returns `x` to the set, merging with its neighbours; false when it was already free.
    pub fn give(&mut self, x: u128) -> bool {
        if self.contains(x) {
            return false;
        }
        let mut start = x;
        let mut end = x;
        if x > 0
            && let Some((&s, &e)) = self.intervals.range(..x).next_back()
            && e == x - 1
        {
            self.intervals.remove(&s);
            start = s;
        }
        if x < u128::MAX
            && let Some(e) = self.intervals.remove(&(x + 1))
        {
            end = e;
        }
        self.intervals.insert(start, end);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::FreeSet;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    proptest! {
        /// The interval set behaves exactly like a plain set of addresses.
        #[test]
        fn matches_a_plain_set(ops in prop::collection::vec((any::<bool>(), 0u128..64), 0..200)) {
            let mut set = FreeSet::full(0, 63);
            let mut model: BTreeSet<u128> = (0..64).collect();
            for (take, x) in ops {
                if take {
                    prop_assert_eq!(set.take(x), model.remove(&x));
                } else {
                    prop_assert_eq!(set.give(x), model.insert(x));
                }
                prop_assert_eq!(set.first(), model.first().copied());
                prop_assert_eq!(set.contains(x), model.contains(&x));
            }
            let merged = set.intervals.iter().zip(set.intervals.iter().skip(1)).all(|((_, e), (s, _))| e + 1 < *s);
            prop_assert!(merged, "neighbouring intervals are always merged");
        }
    }
}
