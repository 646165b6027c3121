//! The verdicts and reasons a controller answers the remote server with, in
//! a feature file's words (`... rejecting it because bad signature ...`): a
//! `Then` step turns its words into the firmware's own values once
//! ([`ExpectedVerdict`] for a dispatch, [`ExpectedAck`] for a demand
//! signal) and compares the controller's answer with them by value.
//!
//! Uses the firmware's public reason enums only; no step or world state.

use firmware::cluster::{self, Verdict};
use firmware::demand;

/// The reasons of one kind, each with the words a feature file names it by.
pub(crate) struct ReasonWords<R: 'static> {
    /// What the reasons are reasons for, for messages ("rejecting a dispatch").
    what: &'static str,
    words: &'static [(&'static str, R)],
}

/// The reason a step names after "because", or none (any reason will do).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NamedReason<R>(Option<R>);

impl<R: Copy + PartialEq> NamedReason<R> {
    /// Whether the controller's reason is the one named (any is, when the
    /// step names none).
    pub(crate) fn admits(&self, given: R) -> bool {
        self.0.is_none_or(|wanted| wanted == given)
    }
}

impl<R: Copy> ReasonWords<R> {
    /// The reason `because` names (`""`: none named); an error that lists
    /// the words the steps know when it names no reason of this kind.
    pub(crate) fn named(&self, because: &str) -> Result<NamedReason<R>, String> {
        let because = because.trim();
        if because.is_empty() {
            return Ok(NamedReason(None));
        }
        self.words
            .iter()
            .find(|(words, _)| *words == because)
            .map(|(_, reason)| NamedReason(Some(*reason)))
            .ok_or_else(|| {
                format!(
                    "`{because}` is not a reason for {} the steps know (they know: {})",
                    self.what,
                    self.words
                        .iter()
                        .map(|(words, _)| *words)
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })
    }
}

/// An acceptance has no reason: an error when a step names one anyway.
fn no_reason_for_acceptance(because: &str) -> Result<(), String> {
    if because.trim().is_empty() {
        Ok(())
    } else {
        Err(format!(
            "an acceptance has no reason: leave out `because {because}`"
        ))
    }
}

/// ` because WORDS` for a message, or nothing when the step names no reason.
pub(crate) fn because_clause(because: &str) -> String {
    if because.trim().is_empty() {
        String::new()
    } else {
        format!(" because {}", because.trim())
    }
}

/// The verdict on a dispatch a step expects, and the reason if it names one.
pub(crate) enum ExpectedVerdict {
    Accepting,
    Ignoring(NamedReason<cluster::IgnoreReason>),
    Rejecting(NamedReason<cluster::RejectReason>),
}

impl ExpectedVerdict {
    /// From the step's words: `accepting|ignoring|rejecting` and the words
    /// after "because" (`""`: no reason named).
    pub(crate) fn parse(verdict: &str, because: &str) -> Result<Self, String> {
        Ok(match verdict {
            "accepting" => {
                no_reason_for_acceptance(because)?;
                Self::Accepting
            }
            "ignoring" => Self::Ignoring(DISPATCH_IGNORED.named(because)?),
            "rejecting" => Self::Rejecting(DISPATCH_REJECTED.named(because)?),
            other => {
                return Err(format!(
                    "`{other}` is not a verdict (accepting, ignoring, rejecting)"
                ))
            }
        })
    }

    /// Whether the controller's verdict is the one expected.
    pub(crate) fn is_verdict(&self, given: &Verdict) -> bool {
        match (self, given) {
            (Self::Accepting, Verdict::Accepted(_)) => true,
            (Self::Ignoring(reason), Verdict::Ignored(r)) => reason.admits(*r),
            (Self::Rejecting(reason), Verdict::Rejected(r)) => reason.admits(*r),
            _ => false,
        }
    }
}

/// The acknowledgement of a demand signal a step expects, and the reason
/// if it names one.
pub(crate) enum ExpectedAck {
    Accepting,
    Rejecting(NamedReason<demand::RejectReason>),
}

impl ExpectedAck {
    /// From the step's words: `accepting|rejecting` and the words after
    /// "because" (`""`: no reason named).
    pub(crate) fn parse(verdict: &str, because: &str) -> Result<Self, String> {
        Ok(match verdict {
            "accepting" => {
                no_reason_for_acceptance(because)?;
                Self::Accepting
            }
            "rejecting" => Self::Rejecting(SIGNAL_REJECTED.named(because)?),
            other => return Err(format!("`{other}` is not a verdict (accepting, rejecting)")),
        })
    }

    /// Whether the controller's acknowledgement is the one expected.
    pub(crate) fn is_ack(&self, given: &demand::Ack) -> bool {
        match (self, given) {
            (Self::Accepting, demand::Ack::Accepted { .. }) => true,
            (Self::Rejecting(reason), demand::Ack::Rejected { reason: r, .. }) => reason.admits(*r),
            _ => false,
        }
    }
}

/// Why a controller rejects a signed dispatch (a malformed one is left out:
/// no step sends one).
pub(crate) const DISPATCH_REJECTED: ReasonWords<cluster::RejectReason> = ReasonWords {
    what: "rejecting a dispatch",
    words: &[
        ("unknown key", cluster::RejectReason::UnknownKey),
        ("bad signature", cluster::RejectReason::BadSignature),
        ("replayed", cluster::RejectReason::Replayed),
        ("expired", cluster::RejectReason::Expired),
        ("not yet valid", cluster::RejectReason::NotYetValid),
        ("out of envelope", cluster::RejectReason::OutOfEnvelope),
        ("not participating", cluster::RejectReason::NotParticipating),
    ],
};

/// Why a controller ignores a genuine dispatch.
pub(crate) const DISPATCH_IGNORED: ReasonWords<cluster::IgnoreReason> = ReasonWords {
    what: "ignoring a dispatch",
    words: &[
        ("other branch", cluster::IgnoreReason::OtherBranch),
        ("other site", cluster::IgnoreReason::OtherSite),
        ("duplicate", cluster::IgnoreReason::Duplicate),
    ],
};

/// Why a controller rejects a demand signal.
pub(crate) const SIGNAL_REJECTED: ReasonWords<demand::RejectReason> = ReasonWords {
    what: "rejecting a signal",
    words: &[
        ("expired", demand::RejectReason::Expired),
        (
            "starts too far ahead",
            demand::RejectReason::StartsTooFarAhead,
        ),
        (
            "exceeds power limit",
            demand::RejectReason::ExceedsPowerLimit,
        ),
        (
            "would breach reserve",
            demand::RejectReason::WouldBreachReserve,
        ),
        ("conflicting", demand::RejectReason::Conflicting),
        ("unknown id", demand::RejectReason::UnknownId),
        ("table full", demand::RejectReason::TableFull),
        ("invalid value", demand::RejectReason::InvalidValue),
    ],
};

#[cfg(test)]
mod tests {
    use super::*;

    /// The words as the variant name they were matched against before
    /// reasons were values ("bad signature" → `BadSignature`).
    fn variant_name(words: &str) -> String {
        words
            .split(' ')
            .map(|w| w[..1].to_ascii_uppercase() + &w[1..])
            .collect()
    }

    fn check_words<R: Copy + PartialEq + std::fmt::Debug>(kind: &ReasonWords<R>) {
        for (i, (words, reason)) in kind.words.iter().enumerate() {
            assert_eq!(kind.named(words), Ok(NamedReason(Some(*reason))));
            assert_eq!(format!("{reason:?}"), variant_name(words), "{words}");
            assert!(
                kind.words[..i]
                    .iter()
                    .all(|(w, r)| w != words && r != reason),
                "{words} twice"
            );
        }
    }

    #[test]
    fn every_reason_is_named_once_by_its_firmware_name_in_words() {
        check_words(&DISPATCH_REJECTED);
        check_words(&DISPATCH_IGNORED);
        check_words(&SIGNAL_REJECTED);
    }

    #[test]
    fn a_named_reason_admits_only_itself_and_none_admits_any() {
        let expired = DISPATCH_REJECTED.named(" expired ").unwrap();
        assert!(expired.admits(cluster::RejectReason::Expired));
        assert!(!expired.admits(cluster::RejectReason::Replayed));
        let any = SIGNAL_REJECTED.named("").unwrap();
        assert!(any.admits(demand::RejectReason::TableFull));
    }

    #[test]
    fn an_acceptance_names_no_reason() {
        assert!(no_reason_for_acceptance("").is_ok());
        assert!(no_reason_for_acceptance("expired").is_err());
        assert_eq!(because_clause(""), "");
        assert_eq!(because_clause("expired"), " because expired");
    }

    #[test]
    fn an_expected_verdict_is_its_kind_with_the_named_reason() {
        let ignored = Verdict::Ignored(cluster::IgnoreReason::OtherBranch);
        let expired = Verdict::Rejected(cluster::RejectReason::Expired);
        let other_branch = ExpectedVerdict::parse("ignoring", "other branch").unwrap();
        assert!(other_branch.is_verdict(&ignored));
        assert!(!other_branch.is_verdict(&Verdict::Ignored(cluster::IgnoreReason::OtherSite)));
        assert!(!other_branch.is_verdict(&expired));
        let rejecting = ExpectedVerdict::parse("rejecting", "").unwrap();
        assert!(rejecting.is_verdict(&expired) && !rejecting.is_verdict(&ignored));
        assert!(!ExpectedVerdict::parse("accepting", "")
            .unwrap()
            .is_verdict(&expired));
        // The reason is one of the verdict's own kind.
        assert!(ExpectedVerdict::parse("rejecting", "other branch").is_err());
        assert!(ExpectedVerdict::parse("accepting", "expired").is_err());
    }

    #[test]
    fn an_expected_ack_is_its_kind_with_the_named_reason() {
        let accepted = demand::Ack::Accepted { id: 3 };
        let too_much = demand::Ack::Rejected {
            id: 3,
            reason: demand::RejectReason::ExceedsPowerLimit,
        };
        let exceeds = ExpectedAck::parse("rejecting", "exceeds power limit").unwrap();
        assert!(exceeds.is_ack(&too_much) && !exceeds.is_ack(&accepted));
        let reserve = ExpectedAck::parse("rejecting", "would breach reserve").unwrap();
        assert!(!reserve.is_ack(&too_much));
        let accepting = ExpectedAck::parse("accepting", "").unwrap();
        assert!(accepting.is_ack(&accepted) && !accepting.is_ack(&too_much));
        assert!(ExpectedAck::parse("accepting", "expired").is_err());
        assert!(ExpectedAck::parse("rejecting", "bad signature").is_err());
    }

    #[test]
    fn unknown_words_list_the_reasons_that_exist() {
        let e = DISPATCH_IGNORED.named("other planet").unwrap_err();
        assert!(
            e.contains("`other planet`")
                && e.contains("ignoring a dispatch")
                && e.contains("other branch, other site, duplicate"),
            "{e}"
        );
        // A reason of another kind is not one of these.
        assert!(SIGNAL_REJECTED.named("bad signature").is_err());
    }
}
