//! The package probe ("which packages are acceptable to both?"): each side lists at most `cap`
//! packages, padded with dummies to exactly `cap`. The responder returns the tags of the
//! initiator's points in the initiator's order, so the initiator learns which of its own
//! packages are in the intersection; it then tells the responder which positions of the
//! responder's (shuffled) list matched, as a bitmap of `cap` bits.

use std::collections::HashMap;

use crate::error::{RedlineError, Result};
use crate::messages::Tag;
use crate::terms::Package;

/// The initiator's result: the packages both sides listed (sorted), and the bitmap of the
/// matching positions in the responder's list. `own` is the initiator's list in the order it
/// sent (`None` for dummies), `reply_tags` the responder's tags of those points in the same
/// order, `their_tags` the tags of the responder's points re-blinded by the initiator.
pub(crate) fn intersect(
    own: &[Option<Package>],
    reply_tags: &[Tag],
    their_tags: &[Tag],
) -> Result<(Vec<Package>, Vec<u8>)> {
    let mut theirs = HashMap::with_capacity(their_tags.len());
    for (j, t) in their_tags.iter().enumerate() {
        if theirs.insert(t, j).is_some() {
            return Err(RedlineError::PeerMisbehaved("repeated a point"));
        }
    }
    let mut bitmap = vec![0u8; their_tags.len().div_ceil(8)];
    let mut agreed = Vec::new();
    for (package, tag) in own.iter().zip(reply_tags) {
        let Some(&j) = theirs.get(tag) else { continue };
        let package = package.as_ref().ok_or(RedlineError::PeerMisbehaved("a dummy matched"))?;
        set_bit(&mut bitmap, j)?;
        agreed.push(package.clone());
    }
    agreed.sort_unstable();
    Ok((agreed, bitmap))
}

/// The responder's result from the initiator's bitmap over the responder's list `own`.
pub(crate) fn read_disclosure(own: &[Option<Package>], bitmap: &[u8]) -> Result<Vec<Package>> {
    if bitmap.len() != own.len().div_ceil(8) {
        return Err(RedlineError::Malformed("the result bitmap has the wrong length"));
    }
    let set = |i: usize| bitmap.get(i / 8).is_some_and(|b| b >> (i % 8) & 1 == 1);
    if (own.len()..bitmap.len() * 8).any(set) {
        return Err(RedlineError::Malformed("bits set beyond the list in the result bitmap"));
    }
    let mut agreed = Vec::new();
    for (_, package) in own.iter().enumerate().filter(|(i, _)| set(*i)) {
        let package = package.as_ref().ok_or(RedlineError::PeerMisbehaved("claimed a dummy matched"))?;
        agreed.push(package.clone());
    }
    agreed.sort_unstable();
    Ok(agreed)
}

fn set_bit(bitmap: &mut [u8], j: usize) -> Result<()> {
    let byte = bitmap.get_mut(j / 8).ok_or(RedlineError::ApiMisuse("bit outside the bitmap"))?;
    if *byte >> (j % 8) & 1 == 1 {
        return Err(RedlineError::PeerMisbehaved("two packages matched one point"));
    }
    *byte |= 1 << (j % 8);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(o: u32) -> Option<Package> {
        Some(Package::new(vec![o]))
    }

    #[test]
    fn intersection_and_bitmap() {
        let own = [p(1), None, p(3)];
        let reply = [[1; 16], [2; 16], [3; 16]];
        let theirs = [[9; 16], [3; 16], [8; 16], [1; 16], [7; 16], [6; 16], [5; 16], [4; 16], [0; 16]];
        let (agreed, bitmap) = intersect(&own, &reply, &theirs).unwrap();
        assert_eq!(agreed, vec![Package::new(vec![1]), Package::new(vec![3])]);
        assert_eq!(bitmap, vec![0b0000_1010, 0]);
        let responder = [None, p(3), p(8), p(1), None, None, None, None, None];
        assert_eq!(read_disclosure(&responder, &bitmap).unwrap(), agreed);
    }

    #[test]
    fn dishonest_results_are_refused() {
        assert!(intersect(&[None], &[[1; 16]], &[[1; 16]]).is_err(), "a dummy matched");
        assert!(intersect(&[p(1)], &[[1; 16]], &[[1; 16], [1; 16]]).is_err(), "repeated point");
        assert!(intersect(&[p(1), p(2)], &[[1; 16], [1; 16]], &[[1; 16]]).is_err(), "one point, two matches");
        assert!(read_disclosure(&[p(1), None], &[0b10]).is_err(), "claims a dummy");
        assert!(read_disclosure(&[p(1), None], &[0b100]).is_err(), "bit beyond the list");
        assert!(read_disclosure(&[p(1), None], &[0, 0]).is_err(), "wrong length");
        assert_eq!(read_disclosure(&[p(1), None], &[0b01]).unwrap(), vec![Package::new(vec![1])]);
    }
}
