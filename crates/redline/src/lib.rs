//! Private red-line probes, sans I/O: two sides learn whether their positions overlap, and
//! nothing more. Semi-honest ECDH-PSI over ristretto255 with sets padded to sizes fixed by
//! the terms.
//!
//! - **Single value** ("is there a zone of agreement?"): one side's most it can give `x`, the
//!   other's least it can take `y`; both learn the one bit `x >= y`.
//! - **Packages** ("which combinations are acceptable to both?"): each side lists at most
//!   `cap` packages; both learn the packages on both lists.
//!
//! Each side keeps a [`ProbeLedger`] (the channel's probe budget and the log of every probe);
//! every transition checks or updates it. Messages are bytes in, bytes out: the caller carries
//! them inside its encrypted session. The protocol and its security model are in
//! `docs/probes.md`.
//!
//! ```
//! use backchannel_redline::*;
//!
//! let terms = ProbeTerms {
//!     phase: "exploratory".into(),
//!     may_ask: MayAsk::Either,
//!     kind: ProbeKind::Single(SingleTerms {
//!         issue: "months until withdrawal".into(),
//!         max: 120,
//!         gives: "Delegation A".into(), // the most it can give: at most 18 months' delay
//!         takes: "Delegation B".into(), // the least it can take: at least 12
//!     }),
//! };
//! let budget = ProbeBudget { per_issue: 3, per_phase: 10 };
//! let (mut a, mut b) = (ProbeLedger::new("Delegation A", budget), ProbeLedger::new("Delegation B", budget));
//!
//! let (a_waits, query) = Initiator::start(&mut a, &terms, &ProbeInput::Value(18))?;
//! let query = Query::decode(&query.encode())?; // ...carried to B inside the session
//! let (b_waits, reply) = Responder::respond(&mut b, &terms, &ProbeInput::Value(12), &query)?;
//! let (a_outcome, disclosure) = a_waits.finish(&mut a, &Reply::decode(&reply.encode())?)?;
//! let b_outcome = b_waits.finish(&mut b, &Disclosure::decode(&disclosure.encode())?)?;
//!
//! assert_eq!(a_outcome.result, ProbeResult::Zone { non_empty: true });
//! assert_eq!(a_outcome, b_outcome);
//! assert_eq!(a.remaining("exploratory", "months until withdrawal"), 2);
//! # Ok::<(), RedlineError>(())
//! ```
#![forbid(unsafe_code)]

pub mod dleq;
pub mod encoding;
pub mod error;
mod group;
pub mod ledger;
pub mod messages;
mod package;
pub mod probe;
mod single;
pub mod terms;

pub use error::{Fault, RedlineError};
pub use ledger::{AskedBy, LogEntry, ProbeBudget, ProbeLedger, ProbeLog, ProbeStatus};
pub use messages::{Disclosure, ProbeId, Query, Reply};
pub use probe::{
    Initiator, InitiatorAwaitingReply, Outcome, ProbeResult, Responder, ResponderAwaitingResult,
};
pub use terms::{
    BudgetKey, IssueOptions, MayAsk, OptionSpace, Package, PackageTerms, ProbeInput, ProbeKind, ProbeTerms,
    SingleTerms, normalise_label,
};
