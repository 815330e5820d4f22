//! The tiers of the sharing hierarchy and the scope rule for what travels up a link.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A node's place in the tree, and also how far a lesson is shared: a lesson shared at tier
/// `City` is visible at its school and its city; at `Province`, everywhere up to the province.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    School,
    City,
    Province,
}

impl Tier {
    pub const ALL: [Tier; 3] = [Tier::School, Tier::City, Tier::Province];

    /// The tier of this tier's parent, if it has one.
    pub fn parent(self) -> Option<Tier> {
        match self {
            Tier::School => Some(Tier::City),
            Tier::City => Some(Tier::Province),
            Tier::Province => None,
        }
    }

    /// The tier of this tier's children, if it has any.
    pub fn child(self) -> Option<Tier> {
        match self {
            Tier::School => None,
            Tier::City => Some(Tier::School),
            Tier::Province => Some(Tier::City),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Tier::School => "school",
            Tier::City => "city",
            Tier::Province => "province",
        }
    }

    /// The Chinese name shown in the portal.
    pub fn zh(self) -> &'static str {
        match self {
            Tier::School => "学校",
            Tier::City => "市级",
            Tier::Province => "省级",
        }
    }
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("unknown tier {0:?}: expected school, city or province")]
pub struct UnknownTier(pub String);

impl FromStr for Tier {
    type Err = UnknownTier;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "school" => Ok(Tier::School),
            "city" => Ok(Tier::City),
            "province" => Ok(Tier::Province),
            _ => Err(UnknownTier(s.to_string())),
        }
    }
}

/// Scope up: a document shared at `share` goes up to a parent at tier `parent` when the share
/// level reaches the parent's tier.
pub fn goes_up(share: Tier, parent: Tier) -> bool {
    share >= parent
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tree_shape() {
        assert_eq!(Tier::School.parent(), Some(Tier::City));
        assert_eq!(Tier::City.parent(), Some(Tier::Province));
        assert_eq!(Tier::Province.parent(), None);
        for t in Tier::ALL {
            if let Some(p) = t.parent() {
                assert_eq!(p.child(), Some(t));
            }
        }
    }

    #[test]
    fn scope_up_follows_share_level() {
        assert!(!goes_up(Tier::School, Tier::City));
        assert!(goes_up(Tier::City, Tier::City));
        assert!(goes_up(Tier::Province, Tier::City));
        assert!(!goes_up(Tier::City, Tier::Province));
        assert!(goes_up(Tier::Province, Tier::Province));
    }

    #[test]
    fn parse_is_forgiving_about_case_but_not_content() {
        assert_eq!("Province".parse::<Tier>().ok(), Some(Tier::Province));
        assert!("county".parse::<Tier>().is_err());
    }
}
