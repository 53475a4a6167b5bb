//! The single-value probe ("is there a zone of agreement?"): each side's number becomes a set
//! by the 0/1-encoding (see [`crate::encoding`]), padded to the comparison width; the PSI
//! runs in cardinality mode (the responder shuffles everything it returns), and the count,
//! which is 0 or 1 for honest sides, is reduced to the one bit "the zone is non-empty".

use std::collections::HashSet;

use zeroize::Zeroizing;

use crate::encoding::{Element, single_elements};
use crate::error::{RedlineError, Result};
use crate::messages::{ProbeId, Tag};
use crate::terms::SingleTerms;

/// This side's padded set: `width(max)` elements.
pub(crate) fn elements(
    terms: &SingleTerms,
    me: &str,
    id: &ProbeId,
    value: u64,
) -> Result<Zeroizing<Vec<Element>>> {
    Ok(single_elements(id, terms.holds(me)?, value, terms.max))
}

/// The initiator's result: do the two sets meet? `reply_tags` are the responder's tags of the
/// initiator's own points (shuffled), `their_tags` the tags of the responder's points
/// re-blinded by the initiator. Honest sets meet at most once.
pub(crate) fn zone_non_empty(reply_tags: &[Tag], their_tags: &[Tag]) -> Result<bool> {
    let theirs: HashSet<&Tag> = their_tags.iter().collect();
    if theirs.len() != their_tags.len() {
        return Err(RedlineError::PeerMisbehaved("repeated a point"));
    }
    match reply_tags.iter().filter(|t| theirs.contains(t)).count() {
        0 => Ok(false),
        1 => Ok(true),
        _ => Err(RedlineError::PeerMisbehaved("a single-value probe matched more than once")),
    }
}

/// The disclosure's body: one byte, 1 if the zone is non-empty.
pub(crate) fn disclosure(non_empty: bool) -> Vec<u8> {
    vec![u8::from(non_empty)]
}

pub(crate) fn read_disclosure(bytes: &[u8]) -> Result<bool> {
    match bytes {
        [0] => Ok(false),
        [1] => Ok(true),
        _ => Err(RedlineError::Malformed("a single-value result is one byte, 0 or 1")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_matches() {
        let (a, b, c) = ([1; 16], [2; 16], [3; 16]);
        assert_eq!(zone_non_empty(&[a, b], &[c]), Ok(false));
        assert_eq!(zone_non_empty(&[a, b], &[c, b]), Ok(true));
        assert!(zone_non_empty(&[a, b], &[a, b]).is_err());
        assert!(zone_non_empty(&[a], &[c, c]).is_err());
    }

    #[test]
    fn disclosure_round_trip() {
        assert_eq!(read_disclosure(&disclosure(true)), Ok(true));
        assert_eq!(read_disclosure(&disclosure(false)), Ok(false));
        assert!(read_disclosure(&[2]).is_err());
        assert!(read_disclosure(&[]).is_err());
    }
}
