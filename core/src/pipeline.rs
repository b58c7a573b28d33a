//! Deal pipelines and their stages. Each stage has an order, a win probability and an outcome
//! (open, won, lost); a deal's status follows the outcome of its stage.

use serde::{Deserialize, Serialize};

use crate::error::Error;

/// The key of the pipeline created with every new database.
pub const DEFAULT_PIPELINE: &str = "default";

/// Whether a stage is still in play or closes the deal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum StageOutcome {
    /// The deal is still being worked.
    #[default]
    Open,
    /// The deal was won.
    Won,
    /// The deal was lost.
    Lost,
}

/// One stage of a pipeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stage {
    /// Stable key used by deals (`proposal`).
    pub key: String,
    /// Display name (`Proposal`); the key when left out.
    #[serde(default)]
    pub name: String,
    /// Chance of winning a deal in this stage, 0 to 100.
    pub probability: u8,
    /// Whether the stage is open, won or lost.
    #[serde(default)]
    pub outcome: StageOutcome,
}

impl Stage {
    /// The deal fields a person is asked to fill in when a deal enters this stage without
    /// them: why it was lost, or what it was won for. The store does not insist (imports and
    /// scripts may close deals without them); the web UI asks before it moves a deal.
    pub fn asks_for(&self) -> &'static [&'static str] {
        match self.outcome {
            StageOutcome::Open => &[],
            StageOutcome::Won => &["amount", "currency"],
            StageOutcome::Lost => &["lost_reason"],
        }
    }
}

/// An ordered list of stages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pipeline {
    /// Stable key (`default`).
    pub key: String,
    /// Display name.
    pub name: String,
    /// Stages in board order.
    pub stages: Vec<Stage>,
}

impl Pipeline {
    /// The pipeline every database starts with: Lead, Qualified, Proposal, Negotiation, then
    /// Won or Lost.
    pub fn default_sales() -> Self {
        let stage = |key: &str, name: &str, probability, outcome| Stage {
            key: key.to_owned(),
            name: name.to_owned(),
            probability,
            outcome,
        };
        Pipeline {
            key: DEFAULT_PIPELINE.to_owned(),
            name: "Sales".to_owned(),
            stages: vec![
                stage("lead", "Lead", 10, StageOutcome::Open),
                stage("qualified", "Qualified", 25, StageOutcome::Open),
                stage("proposal", "Proposal", 50, StageOutcome::Open),
                stage("negotiation", "Negotiation", 75, StageOutcome::Open),
                stage("won", "Won", 100, StageOutcome::Won),
                stage("lost", "Lost", 0, StageOutcome::Lost),
            ],
        }
    }

    /// The stage with this key.
    pub fn stage(&self, key: &str) -> Option<&Stage> {
        self.stages.iter().find(|s| s.key.eq_ignore_ascii_case(key))
    }

    /// The stage keys in order.
    pub fn stage_keys(&self) -> Vec<&str> {
        self.stages.iter().map(|s| s.key.as_str()).collect()
    }

    /// Checks a pipeline definition: keys are slugs and unique, probabilities within 0–100,
    /// at least one open stage and exactly one won and one lost stage.
    pub fn validate(&mut self) -> Result<(), Error> {
        self.key = self.key.trim().to_ascii_lowercase();
        if !is_slug(&self.key) {
            return Err(Error::invalid(
                "key",
                format!(
                    "'{}' must be 1-64 lower-case letters, digits, '-' or '_'",
                    self.key
                ),
            ));
        }
        if self.name.trim().is_empty() {
            return Err(Error::invalid("name", "is required"));
        }
        let mut seen: Vec<String> = Vec::new();
        for (i, s) in self.stages.iter_mut().enumerate() {
            s.key = s.key.trim().to_ascii_lowercase();
            if !is_slug(&s.key) {
                return Err(Error::invalid(
                    format!("stages[{i}].key"),
                    format!(
                        "'{}' must be 1-64 lower-case letters, digits, '-' or '_'",
                        s.key
                    ),
                ));
            }
            if seen.contains(&s.key) {
                return Err(Error::invalid(
                    format!("stages[{i}].key"),
                    format!("'{}' is used by two stages", s.key),
                ));
            }
            if s.probability > 100 {
                return Err(Error::invalid(
                    format!("stages[{i}].probability"),
                    "must be between 0 and 100",
                ));
            }
            if s.name.trim().is_empty() {
                s.name = s.key.clone();
            }
            seen.push(s.key.clone());
        }
        let count = |o| self.stages.iter().filter(|s| s.outcome == o).count();
        if count(StageOutcome::Open) == 0 {
            return Err(Error::invalid("stages", "needs at least one open stage"));
        }
        if count(StageOutcome::Won) != 1 || count(StageOutcome::Lost) != 1 {
            return Err(Error::invalid(
                "stages",
                "needs exactly one stage with outcome 'won' and one with outcome 'lost'",
            ));
        }
        Ok(())
    }
}

/// Whether `s` is a usable key: 1–64 of `a-z0-9_-`, starting with a letter.
pub fn is_slug(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.starts_with(|c: char| c.is_ascii_lowercase())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_pipeline_is_valid() {
        let mut p = Pipeline::default_sales();
        assert!(p.validate().is_ok());
        assert_eq!(p.stage("Proposal").map(|s| s.probability), Some(50));
    }

    #[test]
    fn pipeline_needs_won_and_lost() {
        let mut p = Pipeline::default_sales();
        p.stages.retain(|s| s.outcome != StageOutcome::Lost);
        let err = p.validate().unwrap_err().to_string();
        assert!(err.contains("exactly one stage"), "{err}");
    }
}
