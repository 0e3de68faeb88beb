//! Label selectors: the structured form (`matchLabels` / `matchExpressions`, as in a
//! PodLifecyclePolicy) and the string form of `?labelSelector=` (as the API server takes it).
//! Both compile to one [`Selector`]; matching is a pure function over a label lookup.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

/// Anything labels can be looked up in.
pub trait Labels {
    fn label(&self, key: &str) -> Option<&str>;
}

impl Labels for BTreeMap<String, String> {
    fn label(&self, key: &str) -> Option<&str> {
        self.get(key).map(String::as_str)
    }
}

impl<L: Labels> Labels for Option<L> {
    fn label(&self, key: &str) -> Option<&str> {
        self.as_ref().and_then(|l| l.label(key))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// The key is present with one of the values (`k=v`, `k==v`, `k in (a,b)`, `In`).
    In(Vec<String>),
    /// The key is absent, or present with none of the values (`k!=v`, `k notin (a,b)`, `NotIn`).
    NotIn(Vec<String>),
    /// The key is present (`k`, `Exists`).
    Exists,
    /// The key is absent (`!k`, `DoesNotExist`).
    DoesNotExist,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    pub key: String,
    pub op: Op,
}

impl Requirement {
    pub fn matches(&self, labels: &impl Labels) -> bool {
        let value = labels.label(&self.key);
        match &self.op {
            Op::In(values) => value.is_some_and(|v| values.iter().any(|x| x == v)),
            Op::NotIn(values) => value.is_none_or(|v| values.iter().all(|x| x != v)),
            Op::Exists => value.is_some(),
            Op::DoesNotExist => value.is_none(),
        }
    }
}

/// A conjunction of requirements; the empty selector matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selector {
    pub requirements: Vec<Requirement>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SelectorError {
    #[error(
        "matchExpressions[{index}]: unknown operator {operator:?} (want In, NotIn, Exists or DoesNotExist)"
    )]
    UnknownOperator { index: usize, operator: String },
    #[error("matchExpressions[{index}]: operator {operator} needs at least one value")]
    MissingValues { index: usize, operator: String },
    #[error("matchExpressions[{index}]: operator {operator} takes no values")]
    UnexpectedValues { index: usize, operator: String },
    #[error("label selector {selector:?}: {reason}")]
    Syntax {
        selector: String,
        reason: SyntaxError,
    },
}

/// What is wrong in the string form of a selector (see [`SelectorError::Syntax`]).
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum SyntaxError {
    #[error("unbalanced '{0}'")]
    Unbalanced(char),
    #[error("invalid label key {0:?}")]
    InvalidKey(String),
    #[error("invalid label value {0:?}")]
    InvalidValue(String),
    /// After a key, neither an operator nor `in`/`notin`.
    #[error("unexpected {rest:?} after key {key:?}")]
    Unexpected { key: String, rest: String },
    #[error("values of {0:?} must be in parentheses")]
    UnparenthesizedValues(String),
    #[error("set of {0:?} has no values")]
    EmptySet(String),
}

impl Selector {
    pub fn everything() -> Self {
        Self::default()
    }

    pub fn is_everything(&self) -> bool {
        self.requirements.is_empty()
    }

    pub fn matches(&self, labels: &impl Labels) -> bool {
        self.requirements.iter().all(|r| r.matches(labels))
    }

    /// Compile a structured selector; invalid expressions are errors naming the expression.
    pub fn from_label_selector(selector: &LabelSelector) -> Result<Self, SelectorError> {
        let mut requirements = Vec::new();
        for (key, value) in selector.match_labels.iter().flatten() {
            requirements.push(Requirement {
                key: key.clone(),
                op: Op::In(vec![value.clone()]),
            });
        }
        for (index, expr) in selector.match_expressions.iter().flatten().enumerate() {
            let values = expr.values.clone().unwrap_or_default();
            let operator = expr.operator.clone();
            let op = match expr.operator.as_str() {
                "In" | "NotIn" if values.is_empty() => {
                    return Err(SelectorError::MissingValues { index, operator });
                }
                "Exists" | "DoesNotExist" if !values.is_empty() => {
                    return Err(SelectorError::UnexpectedValues { index, operator });
                }
                "In" => Op::In(values),
                "NotIn" => Op::NotIn(values),
                "Exists" => Op::Exists,
                "DoesNotExist" => Op::DoesNotExist,
                _ => return Err(SelectorError::UnknownOperator { index, operator }),
            };
            requirements.push(Requirement {
                key: expr.key.clone(),
                op,
            });
        }
        Ok(Self { requirements })
    }

    /// Parse the string form: `a=b,c!=d,e in (f,g),h notin (i),j,!k`.
    pub fn parse(input: &str) -> Result<Self, SelectorError> {
        let err = |reason: SyntaxError| SelectorError::Syntax {
            selector: input.to_string(),
            reason,
        };
        let mut requirements = Vec::new();
        for term in split_terms(input).map_err(err)? {
            let term = term.trim();
            if term.is_empty() {
                continue;
            }
            requirements.push(parse_term(term).map_err(err)?);
        }
        Ok(Self { requirements })
    }
}

/// Split on commas that are not inside a `( ... )` value set.
fn split_terms(input: &str) -> Result<Vec<&str>, SyntaxError> {
    let mut terms = Vec::new();
    let (mut depth, mut start) = (0usize, 0usize);
    for (i, c) in input.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.checked_sub(1).ok_or(SyntaxError::Unbalanced(')'))?,
            ',' if depth == 0 => {
                terms.push(&input[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err(SyntaxError::Unbalanced('('));
    }
    terms.push(&input[start..]);
    Ok(terms)
}

fn parse_term(term: &str) -> Result<Requirement, SyntaxError> {
    if let Some(key) = term.strip_prefix('!') {
        return Ok(Requirement {
            key: valid_key(key.trim())?,
            op: Op::DoesNotExist,
        });
    }
    if let Some((key, value)) = term.split_once("!=") {
        return Ok(Requirement {
            key: valid_key(key.trim())?,
            op: Op::NotIn(vec![valid_value(value.trim())?]),
        });
    }
    if let Some((key, value)) = term.split_once("==").or_else(|| term.split_once('=')) {
        return Ok(Requirement {
            key: valid_key(key.trim())?,
            op: Op::In(vec![valid_value(value.trim())?]),
        });
    }
    let mut words = term.splitn(2, char::is_whitespace);
    let key = valid_key(words.next().unwrap_or_default())?;
    let Some(rest) = words.next().map(str::trim) else {
        return Ok(Requirement {
            key,
            op: Op::Exists,
        });
    };
    let (negated, set) = if let Some(set) = rest.strip_prefix("notin") {
        (true, set)
    } else if let Some(set) = rest.strip_prefix("in") {
        (false, set)
    } else {
        return Err(SyntaxError::Unexpected {
            key,
            rest: rest.to_string(),
        });
    };
    let set = set
        .trim()
        .strip_prefix('(')
        .and_then(|s| s.strip_suffix(')'))
        .ok_or_else(|| SyntaxError::UnparenthesizedValues(key.clone()))?;
    let values = set
        .split(',')
        .map(|v| valid_value(v.trim()))
        .collect::<Result<Vec<_>, _>>()?;
    if values.iter().all(String::is_empty) {
        return Err(SyntaxError::EmptySet(key));
    }
    let op = if negated {
        Op::NotIn(values)
    } else {
        Op::In(values)
    };
    Ok(Requirement { key, op })
}

fn valid_key(key: &str) -> Result<String, SyntaxError> {
    let ok = !key.is_empty()
        && key.len() <= 317
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'));
    if ok {
        Ok(key.to_string())
    } else {
        Err(SyntaxError::InvalidKey(key.to_string()))
    }
}

fn valid_value(value: &str) -> Result<String, SyntaxError> {
    let ok = value.len() <= 63
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(value.to_string())
    } else {
        Err(SyntaxError::InvalidValue(value.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn string_selectors_match_as_the_api_server_does() {
        let web = labels(&[("app", "web"), ("tier", "frontend")]);
        let db = labels(&[("app", "db")]);
        let cases: &[(&str, bool, bool)] = &[
            // (selector, matches web, matches db)
            ("", true, true),
            ("app=web", true, false),
            ("app==web", true, false),
            ("app!=web", false, true),
            ("tier!=frontend", false, true),
            ("app in (web, api)", true, false),
            ("app notin (web,api)", false, true),
            ("tier", true, false),
            ("!tier", false, true),
            ("app=web,tier=frontend", true, false),
            ("app in (db),!tier", false, true),
        ];
        for (selector, want_web, want_db) in cases {
            let s = Selector::parse(selector).unwrap();
            assert_eq!(s.matches(&web), *want_web, "{selector:?} on web");
            assert_eq!(s.matches(&db), *want_db, "{selector:?} on db");
        }
    }

    #[test]
    fn malformed_string_selectors_name_the_problem() {
        for (selector, needle) in [
            ("app in (web", "unbalanced"),
            ("app in web", "parentheses"),
            ("app=we b", "invalid label value"),
            ("=web", "invalid label key"),
            ("app foo (x)", "unexpected"),
            ("app in ()", "no values"),
        ] {
            let err = Selector::parse(selector).unwrap_err().to_string();
            assert!(err.contains(needle), "{selector:?}: {err}");
        }
    }

    #[test]
    fn structured_selectors_compile_and_reject_bad_expressions() {
        let expr = |key: &str, op: &str, values: Option<Vec<&str>>| LabelSelectorRequirement {
            key: key.into(),
            operator: op.into(),
            values: values.map(|v| v.into_iter().map(String::from).collect()),
        };
        let sel = LabelSelector {
            match_labels: Some(labels(&[("app", "web")])),
            match_expressions: Some(vec![expr("tier", "NotIn", Some(vec!["backend"]))]),
        };
        let s = Selector::from_label_selector(&sel).unwrap();
        assert!(s.matches(&labels(&[("app", "web"), ("tier", "frontend")])));
        assert!(!s.matches(&labels(&[("app", "web"), ("tier", "backend")])));
        assert!(
            Selector::from_label_selector(&LabelSelector::default())
                .unwrap()
                .is_everything()
        );

        let bad = |e| LabelSelector {
            match_labels: None,
            match_expressions: Some(vec![e]),
        };
        assert_eq!(
            Selector::from_label_selector(&bad(expr("a", "Matches", None))),
            Err(SelectorError::UnknownOperator {
                index: 0,
                operator: "Matches".into()
            })
        );
        assert!(matches!(
            Selector::from_label_selector(&bad(expr("a", "In", Some(vec![])))),
            Err(SelectorError::MissingValues { .. })
        ));
        assert!(matches!(
            Selector::from_label_selector(&bad(expr("a", "Exists", Some(vec!["x"])))),
            Err(SelectorError::UnexpectedValues { .. })
        ));
    }
}
