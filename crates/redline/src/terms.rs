//! What both sides agree before anyone gives an input: the kind of probe, the issue, the range
//! or option space, the cap, who may ask, and the phase it counts against. Then the private
//! inputs, checked against those terms.

use serde::{Deserialize, Serialize};
use unicode_normalization::UnicodeNormalization;
use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::encoding::{DOMAIN, Holds, Writer};
use crate::error::{RedlineError, Result};

/// The largest range a single-value probe may cover: `0..=2^32`.
pub const MAX_RANGE: u64 = 1 << 32;
/// The largest cap on a package list.
pub const MAX_CAP: u32 = 1 << 20;
/// Bounds on the option space and on labels, so terms stay small and cheap to hash.
pub const MAX_ISSUES: usize = 32;
pub const MAX_OPTIONS: usize = 1 << 16;
pub const MAX_LABEL: usize = 256;

/// The terms of one probe, fixed (and hashed into the transcript) before inputs are given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeTerms {
    /// The channel phase the probe counts against (budget per phase).
    pub phase: String,
    /// Which side may start this probe.
    pub may_ask: MayAsk,
    pub kind: ProbeKind,
}

/// Who may start a probe under these terms.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MayAsk {
    Either,
    /// Only the side with this label.
    Only(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ProbeKind {
    /// Is there a zone of agreement on one number?
    Single(SingleTerms),
    /// Which packages are acceptable to both?
    Package(PackageTerms),
}

/// A single-value probe: one side's most it can give `x`, the other's least it can take `y`,
/// both in `0..=max`; the zone of agreement is non-empty iff `x >= y`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SingleTerms {
    pub issue: String,
    pub max: u64,
    /// The side label holding "the most it can give".
    pub gives: String,
    /// The side label holding "the least it can take".
    pub takes: String,
}

/// A package probe: each side lists at most `cap` packages from `space`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageTerms {
    pub space: OptionSpace,
    pub cap: u32,
}

/// The issues of a package probe, each with its named options, in an agreed order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OptionSpace {
    pub issues: Vec<IssueOptions>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssueOptions {
    pub issue: String,
    pub options: Vec<String>,
}

/// One option per issue, by index into the option space. Private input: Debug prints nothing.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Zeroize, ZeroizeOnDrop, Serialize, Deserialize)]
pub struct Package(Vec<u32>);

/// One side's private input. Zeroed on drop; Debug prints nothing. Serialisable so a client
/// can keep it in its encrypted store until the probe runs; never send that form.
#[derive(Clone, Zeroize, ZeroizeOnDrop, Serialize, Deserialize)]
pub enum ProbeInput {
    /// The side's number in a single-value probe (what it can give, or what it must take).
    Value(u64),
    /// The packages the side could accept (at most the cap).
    Packages(Vec<Package>),
}

impl std::fmt::Debug for Package {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Package(<redacted>)")
    }
}

impl std::fmt::Debug for ProbeInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Value(_) => f.write_str("ProbeInput::Value(<redacted>)"),
            Self::Packages(p) => write!(f, "ProbeInput::Packages(<{} redacted>)", p.len()),
        }
    }
}

impl Package {
    /// A package from option indices, one per issue in the option space's order.
    pub fn new(options: Vec<u32>) -> Self {
        Self(options)
    }

    pub fn options(&self) -> &[u32] {
        &self.0
    }

    /// Count, then each option index, big-endian u32s: the package's only encoding.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.u32(self.0.len() as u32);
        self.0.iter().for_each(|&o| {
            w.u32(o);
        });
        std::mem::take(&mut w.0)
    }
}

impl OptionSpace {
    /// The package choosing the named option on every issue, in the space's order.
    pub fn package(&self, choices: &[&str]) -> Result<Package> {
        if choices.len() != self.issues.len() {
            return Err(RedlineError::InvalidInput("a package names one option per issue"));
        }
        let index = |(issue, choice): (&IssueOptions, &&str)| {
            let found = issue.options.iter().position(|o| o == choice);
            found.map(|i| i as u32).ok_or(RedlineError::InvalidInput("option not in the option space"))
        };
        Ok(Package(self.issues.iter().zip(choices).map(index).collect::<Result<_>>()?))
    }

    /// The option names of a package, for showing a result.
    pub fn describe<'a>(&'a self, package: &Package) -> Option<Vec<(&'a str, &'a str)>> {
        let names = self.issues.iter().zip(&package.0);
        let name =
            |(i, &o): (&'a IssueOptions, &u32)| Some((i.issue.as_str(), i.options.get(o as usize)?.as_str()));
        (package.0.len() == self.issues.len()).then(|| names.map(name).collect::<Option<Vec<_>>>())?
    }

    /// How many packages the space holds (saturating).
    pub fn size(&self) -> u64 {
        self.issues.iter().fold(1u64, |n, i| n.saturating_mul(i.options.len() as u64))
    }

    pub fn contains(&self, package: &Package) -> bool {
        package.0.len() == self.issues.len()
            && self.issues.iter().zip(&package.0).all(|(i, &o)| (o as usize) < i.options.len())
    }

    /// Also refuses options or issues that differ only in case, spacing or Unicode form
    /// ("Months", "months "): they would inflate the space, and so the cap it allows, with
    /// packages nobody can tell apart.
    fn validate(&self) -> Result<()> {
        let bad = |why| Err(RedlineError::InvalidTerms(why));
        if self.issues.is_empty() || self.issues.len() > MAX_ISSUES {
            return bad("a package probe needs 1 to 32 issues");
        }
        for issue in &self.issues {
            if issue.options.is_empty() || issue.options.len() > MAX_OPTIONS {
                return bad("every issue needs 1 to 65536 options");
            }
            check_label(&issue.issue)?;
            issue.options.iter().try_for_each(|o| check_label(o))?;
            if !distinct(issue.options.iter().map(String::as_str)) {
                return bad("an issue lists the same option twice (up to case, spacing or Unicode form)");
            }
        }
        if !distinct(self.issues.iter().map(|i| i.issue.as_str())) {
            return bad("the same issue is listed twice (up to case, spacing or Unicode form)");
        }
        Ok(())
    }
}

impl ProbeTerms {
    /// Terms that can be run: labels bounded, range and cap within limits, two distinct sides.
    pub fn validate(&self) -> Result<()> {
        check_label(&self.phase)?;
        if let MayAsk::Only(side) = &self.may_ask {
            check_label(side)?;
        }
        match &self.kind {
            ProbeKind::Single(s) => s.validate(),
            ProbeKind::Package(p) => p.validate(),
        }
    }

    /// The issues this probe touches: each one's budget is charged.
    pub fn issues(&self) -> Vec<&str> {
        match &self.kind {
            ProbeKind::Single(s) => vec![s.issue.as_str()],
            ProbeKind::Package(p) => p.space.issues.iter().map(|i| i.issue.as_str()).collect(),
        }
    }

    /// The budget keys this probe charges when run with the side `counterpart`: one per issue,
    /// each (normalised counterpart side, normalised issue). A client that keeps a budget across
    /// channels keys it by these, so a new channel or a relabelled issue starts no fresh budget.
    pub fn budget_keys(&self, counterpart: &str) -> Vec<BudgetKey> {
        self.issues().into_iter().map(|issue| BudgetKey::new(counterpart, issue)).collect()
    }

    /// The number of elements each side's set is padded to: public, from the terms alone.
    pub fn set_size(&self) -> usize {
        match &self.kind {
            ProbeKind::Single(s) => crate::encoding::comparison_width(s.max) as usize,
            ProbeKind::Package(p) => p.cap as usize,
        }
    }

    /// The tag that names the kind on the wire.
    pub(crate) fn kind_tag(&self) -> u8 {
        match self.kind {
            ProbeKind::Single(_) => 1,
            ProbeKind::Package(_) => 2,
        }
    }

    /// The canonical encoding hashed into every transcript.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.bytes(DOMAIN).bytes(b"/terms").str(&self.phase);
        match &self.may_ask {
            MayAsk::Either => w.u8(0),
            MayAsk::Only(side) => w.u8(1).str(side),
        };
        match &self.kind {
            ProbeKind::Single(s) => {
                w.u8(1).str(&s.issue).u64(s.max).str(&s.gives).str(&s.takes);
            }
            ProbeKind::Package(p) => p.encode(w.u8(2)),
        }
        w.0
    }

    /// Checks a side's private input against the terms; `me` is the side's label. Starting
    /// and answering check it again; a client calls this to refuse an input when it is given.
    pub fn check_input(&self, me: &str, input: &ProbeInput) -> Result<()> {
        match (&self.kind, input) {
            (ProbeKind::Single(s), ProbeInput::Value(v)) => s.holds(me).and_then(|_| s.check_value(*v)),
            (ProbeKind::Package(p), ProbeInput::Packages(list)) => p.check_list(list),
            _ => Err(RedlineError::InvalidInput("input of the wrong kind for these terms")),
        }
    }
}

impl SingleTerms {
    fn validate(&self) -> Result<()> {
        check_label(&self.issue)?;
        check_label(&self.gives)?;
        check_label(&self.takes)?;
        if self.max > MAX_RANGE {
            return Err(RedlineError::InvalidTerms("the range may reach at most 2^32"));
        }
        if self.gives == self.takes {
            return Err(RedlineError::InvalidTerms("the two numbers must be held by two different sides"));
        }
        Ok(())
    }

    /// Which number `me` holds.
    pub(crate) fn holds(&self, me: &str) -> Result<Holds> {
        match me {
            _ if me == self.gives => Ok(Holds::Gives),
            _ if me == self.takes => Ok(Holds::Takes),
            _ => Err(RedlineError::ApiMisuse("this side holds neither number of the probe")),
        }
    }

    fn check_value(&self, v: u64) -> Result<()> {
        match v <= self.max {
            true => Ok(()),
            false => Err(RedlineError::InvalidInput("value outside the agreed range")),
        }
    }
}

impl PackageTerms {
    fn validate(&self) -> Result<()> {
        if self.cap == 0 || self.cap > MAX_CAP {
            return Err(RedlineError::InvalidTerms("the cap must be between 1 and 2^20"));
        }
        self.space.validate()?;
        match u64::from(self.cap) < self.space.size() {
            true => Ok(()),
            false => Err(RedlineError::InvalidTerms(
                "the cap must be below the number of packages, or a side could list them all",
            )),
        }
    }

    fn encode(&self, w: &mut Writer) {
        w.u32(self.cap).u32(self.space.issues.len() as u32);
        for issue in &self.space.issues {
            w.str(&issue.issue).u32(issue.options.len() as u32);
            issue.options.iter().for_each(|o| {
                w.str(o);
            });
        }
    }

    fn check_list(&self, list: &[Package]) -> Result<()> {
        if list.len() > self.cap as usize {
            return Err(RedlineError::InvalidInput("more packages than the agreed cap"));
        }
        if !list.iter().all(|p| self.space.contains(p)) {
            return Err(RedlineError::InvalidInput("a package outside the option space"));
        }
        let mut sorted: Vec<&Package> = list.iter().collect();
        sorted.sort_unstable();
        match sorted.windows(2).any(|w| w[0] == w[1]) {
            true => Err(RedlineError::InvalidInput("the same package listed twice")),
            false => Ok(()),
        }
    }
}

/// What a probe budget is counted by: the other side and the issue, both normalised with
/// [`normalise_label`]. Equal keys share one budget.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct BudgetKey {
    pub counterpart: String,
    pub issue: String,
}

impl BudgetKey {
    pub fn new(counterpart_side: &str, issue: &str) -> Self {
        Self { counterpart: normalise_label(counterpart_side), issue: normalise_label(issue) }
    }
}

/// A label as budgets and duplicate checks compare it: Unicode NFKC, lower case, runs of
/// whitespace made one space, no space at either end. "Months", " months" and "ＭＯＮＴＨＳ"
/// are one issue. (Look-alike letters of other scripts are not folded: both sides see the
/// labels.)
pub fn normalise_label(label: &str) -> String {
    let folded: String = label.nfkc().collect::<String>().to_lowercase().nfkc().collect();
    folded.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn distinct<'a>(labels: impl Iterator<Item = &'a str>) -> bool {
    let mut seen = std::collections::BTreeSet::new();
    labels.map(normalise_label).all(|l| seen.insert(l))
}

/// A label of the terms: 1 to 256 bytes, not blank, without control, bidi or zero-width
/// characters (junk that would make two labels look the same, or reorder what is shown).
fn check_label(s: &str) -> Result<()> {
    if s.len() > MAX_LABEL {
        return Err(RedlineError::InvalidTerms("labels are at most 256 bytes"));
    }
    if s.trim().is_empty() {
        return Err(RedlineError::InvalidTerms("a label is empty"));
    }
    let hidden = |c: char| {
        matches!(
            c.general_category(),
            GeneralCategory::Control
                | GeneralCategory::Format
                | GeneralCategory::LineSeparator
                | GeneralCategory::ParagraphSeparator
        )
    };
    match s.chars().any(hidden) {
        true => Err(RedlineError::InvalidTerms("a label holds control, bidi or zero-width characters")),
        false => Ok(()),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn single(max: u64) -> ProbeTerms {
        let s = SingleTerms { issue: "months".into(), max, gives: "A".into(), takes: "B".into() };
        ProbeTerms { phase: "exploratory".into(), may_ask: MayAsk::Either, kind: ProbeKind::Single(s) }
    }

    /// An option space of `issues` issues with `options` options each.
    pub fn packages(issues: usize, options: usize, cap: u32) -> ProbeTerms {
        let issue = |i| IssueOptions {
            issue: format!("issue {i}"),
            options: (0..options).map(|o| format!("option {o}")).collect(),
        };
        let space = OptionSpace { issues: (0..issues).map(issue).collect() };
        ProbeTerms {
            phase: "drafting".into(),
            may_ask: MayAsk::Either,
            kind: ProbeKind::Package(PackageTerms { space, cap }),
        }
    }

    #[test]
    fn inputs_are_checked_against_the_terms() {
        let t = single(120);
        assert!(t.check_input("A", &ProbeInput::Value(120)).is_ok());
        assert_eq!(
            t.check_input("A", &ProbeInput::Value(121)),
            Err(RedlineError::InvalidInput("value outside the agreed range"))
        );
        assert!(matches!(t.check_input("C", &ProbeInput::Value(1)), Err(RedlineError::ApiMisuse(_))));
        assert!(t.check_input("A", &ProbeInput::Packages(vec![])).is_err());
        let p = packages(2, 3, 2);
        let ok = |v: Vec<Vec<u32>>| {
            p.check_input("A", &ProbeInput::Packages(v.into_iter().map(Package::new).collect()))
        };
        assert!(ok(vec![vec![0, 2], vec![2, 0]]).is_ok());
        assert!(ok(vec![vec![0, 3]]).is_err(), "option out of range");
        assert!(ok(vec![vec![0]]).is_err(), "one option per issue");
        assert!(ok(vec![vec![0, 1], vec![0, 1]]).is_err(), "duplicates");
        assert_eq!(
            ok(vec![vec![0, 0], vec![0, 1], vec![0, 2]]),
            Err(RedlineError::InvalidInput("more packages than the agreed cap"))
        );
    }

    #[test]
    fn terms_are_validated() {
        assert!(single(MAX_RANGE).validate().is_ok());
        assert!(single(MAX_RANGE + 1).validate().is_err());
        assert!(packages(2, 3, 0).validate().is_err());
        assert!(packages(0, 3, 1).validate().is_err());
        assert!(packages(2, 0, 1).validate().is_err());
        assert!(packages(2, 3, 8).validate().is_ok());
        assert!(packages(2, 3, 9).validate().is_err(), "a cap that lets a side list every package");
        let mut same = single(5);
        if let ProbeKind::Single(s) = &mut same.kind {
            s.takes = "A".into();
        }
        assert!(same.validate().is_err());
    }

    /// M7: junk and duplicate options (up to case, spacing, Unicode form) are refused, so the
    /// cap cannot be inflated with packages nobody can tell apart.
    #[test]
    fn duplicate_and_junk_options_are_refused() {
        let with = |options: &[&str]| {
            let mut t = packages(2, 3, 4);
            if let ProbeKind::Package(p) = &mut t.kind {
                p.space.issues[0].options = options.iter().map(|o| (*o).to_owned()).collect();
            }
            t.validate()
        };
        assert!(with(&["6 months", "12 months", "18 months"]).is_ok());
        for junk in [
            &["6 months", "6 months", "x"][..],
            &["6 months", "6 Months ", "x"],
            &["6 months", "6  months", "x"],
            &["Ａ", "a", "x"],
            &["", "a", "x"],
            &["   ", "a", "x"],
            &["a\u{0}", "b", "x"],
            &["a\u{200B}", "a", "x"],
            &["a\u{202E}", "b", "x"],
        ] {
            assert!(matches!(with(junk), Err(RedlineError::InvalidTerms(_))), "{junk:?}");
        }
        let mut twice = packages(2, 3, 4);
        if let ProbeKind::Package(p) = &mut twice.kind {
            p.space.issues[1].issue = "Issue 0 ".into();
        }
        assert!(twice.validate().is_err(), "one issue listed twice");
        let mut blank_issue = single(10);
        if let ProbeKind::Single(s) = &mut blank_issue.kind {
            s.issue = " ".into();
        }
        assert!(blank_issue.validate().is_err());
    }

    #[test]
    fn labels_normalise_for_budgets() {
        for same in ["months", "Months", " months ", "MONTHS", "ｍｏｎｔｈｓ", "months\u{00A0}"] {
            assert_eq!(normalise_label(same), "months", "{same:?}");
        }
        assert_eq!(normalise_label("months  until\twithdrawal"), "months until withdrawal");
        assert_eq!(normalise_label("e\u{0301}chéance"), normalise_label("échéance"), "NFC/NFKC");
        assert_ne!(normalise_label("months"), normalise_label("years"));
        let keys = single(10).budget_keys("Delegation B ");
        assert_eq!(keys, [BudgetKey { counterpart: "delegation b".into(), issue: "months".into() }]);
    }

    #[test]
    fn packages_by_name() {
        let t = packages(2, 3, 4);
        let ProbeKind::Package(p) = &t.kind else { unreachable!() };
        let pkg = p.space.package(&["option 2", "option 0"]).unwrap();
        assert_eq!(pkg.options(), &[2, 0]);
        assert_eq!(p.space.describe(&pkg).unwrap(), vec![("issue 0", "option 2"), ("issue 1", "option 0")]);
        assert!(p.space.package(&["option 9", "option 0"]).is_err());
    }

    #[test]
    fn canonical_bytes_differ_when_terms_differ() {
        assert_ne!(single(5).canonical_bytes(), single(6).canonical_bytes());
        assert_ne!(packages(2, 3, 4).canonical_bytes(), packages(2, 3, 5).canonical_bytes());
    }

    #[test]
    fn inputs_print_no_secret() {
        assert_eq!(format!("{:?}", ProbeInput::Value(987_654_321)), "ProbeInput::Value(<redacted>)");
        let shown = format!("{:?}", ProbeInput::Packages(vec![Package::new(vec![424_242])]));
        assert!(!shown.contains("424242"), "{shown}");
        assert_eq!(format!("{:?}", Package::new(vec![424_242])), "Package(<redacted>)");
    }
}
