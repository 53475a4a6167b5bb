//! Finding parties by the names people type: `NAME` or `NAME@SIDE`, case-insensitive.

use backchannel_proto::identity::Card;

/// Whether `card` answers to `query` (`NAME` or `NAME@SIDE`).
pub fn answers_to(card: &Card, query: &str) -> bool {
    let (name, side) = match query.rsplit_once('@') {
        Some((n, s)) => (n, Some(s)),
        None => (query, None),
    };
    card.name.eq_ignore_ascii_case(name) && side.is_none_or(|s| card.side.eq_ignore_ascii_case(s))
}

/// Which of `cards` answer to `query`.
pub enum Found<T> {
    None,
    One(T),
    Several,
}

/// The one item whose card answers to `query`.
pub fn find<T>(items: impl IntoIterator<Item = T>, card: impl Fn(&T) -> &Card, query: &str) -> Found<T> {
    let mut hits = items.into_iter().filter(|i| answers_to(card(i), query));
    match (hits.next(), hits.next()) {
        (None, _) => Found::None,
        (Some(one), None) => Found::One(one),
        (Some(_), Some(_)) => Found::Several,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use backchannel_proto::identity::Identity;

    #[test]
    fn names_and_sides_are_matched_without_case() {
        let bao = Identity::generate("Bao", "Delegation B").unwrap().card();
        assert!(answers_to(&bao, "bao"));
        assert!(answers_to(&bao, "BAO@delegation b"));
        assert!(!answers_to(&bao, "Bao@Delegation A"));
        assert!(!answers_to(&bao, "Ba"));
        let other = Identity::generate("Bao", "Delegation C").unwrap().card();
        let cards = [bao.clone(), other];
        assert!(matches!(find(cards.iter(), |c| c, "bao"), Found::Several));
        assert!(
            matches!(find(cards.iter(), |c| c, "bao@delegation c"), Found::One(c) if c.side == "Delegation C")
        );
        assert!(matches!(find(cards.iter(), |c| c, "Chen"), Found::None));
    }
}
