//! Filters for `list` and `prune`, parsed from Docker's `key=value` strings.

use std::str::FromStr;

use crate::volume::Volume;
use crate::{Error, Result};

/// One filter of `volume ls --filter` / `volume prune --filter`.
///
/// Parsed from `label=k`, `label=k=v`, `label!=k`, `label!=k=v`, `dangling=true|false|1|0`,
/// `name=TEXT` and `driver=NAME`:
///
/// ```
/// use mountkit_volumes::Filter;
/// let f: Filter = "label!=env=prod".parse().unwrap();
/// assert_eq!(f, Filter::Label { key: "env".into(), value: Some("prod".into()), negate: true });
/// assert!("colour=red".parse::<Filter>().unwrap_err().to_string().contains("\"colour=red\""));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filter {
    /// `label=key[=value]` (the volume has the label, with that value if given) or, with `negate`,
    /// `label!=key[=value]` (it does not).
    Label {
        /// The label's key.
        key: String,
        /// The value it must have; `None` for any value.
        value: Option<String>,
        /// `label!=`: keep the volumes that do *not* match.
        negate: bool,
    },
    /// `dangling=true`: volumes no container references; `false`: referenced ones.
    Dangling(bool),
    /// `name=TEXT`: volumes whose name contains TEXT.
    Name(String),
    /// `driver=NAME`: volumes of that driver.
    Driver(String),
}

impl FromStr for Filter {
    type Err = Error;

    fn from_str(s: &str) -> Result<Filter> {
        let bad = |reason: &str| Error::InvalidFilter {
            filter: s.to_string(),
            reason: reason.to_string(),
        };
        let (key, value) = s.split_once('=').ok_or_else(|| bad("expected key=value"))?;
        if value.is_empty() {
            return Err(bad("the value is empty"));
        }
        match key {
            "label" | "label!" => {
                let (k, v) = match value.split_once('=') {
                    Some((k, v)) => (k, Some(v.to_string())),
                    None => (value, None),
                };
                if k.is_empty() {
                    return Err(bad("the label key is empty"));
                }
                Ok(Filter::Label {
                    key: k.to_string(),
                    value: v,
                    negate: key == "label!",
                })
            }
            "dangling" => match value {
                "true" | "1" => Ok(Filter::Dangling(true)),
                "false" | "0" => Ok(Filter::Dangling(false)),
                _ => Err(bad("dangling takes true, false, 1 or 0")),
            },
            "name" => Ok(Filter::Name(value.to_string())),
            "driver" => Ok(Filter::Driver(value.to_string())),
            _ => Err(bad(
                "unknown filter; known: label, label!, dangling, name, driver",
            )),
        }
    }
}

impl Filter {
    fn matches(&self, vol: &Volume) -> bool {
        match self {
            Filter::Label { key, value, negate } => {
                let hit = match (vol.labels.get(key), value) {
                    (None, _) => false,
                    (Some(_), None) => true,
                    (Some(have), Some(want)) => have == want,
                };
                hit != *negate
            }
            Filter::Dangling(d) => vol.users.is_empty() == *d,
            Filter::Name(text) => vol.name.contains(text.as_str()),
            Filter::Driver(d) => &vol.driver == d,
        }
    }
}

/// True when `vol` passes `filters`: every label and dangling filter holds, and at least one of the name
/// filters (if any) and one of the driver filters (if any).
pub(crate) fn matches_all(filters: &[Filter], vol: &Volume) -> bool {
    let mut any_name = None;
    let mut any_driver = None;
    for f in filters {
        match f {
            Filter::Name(_) => *any_name.get_or_insert(false) |= f.matches(vol),
            Filter::Driver(_) => *any_driver.get_or_insert(false) |= f.matches(vol),
            _ if !f.matches(vol) => return false,
            _ => {}
        }
    }
    any_name.unwrap_or(true) && any_driver.unwrap_or(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn vol(name: &str, labels: &[(&str, &str)], users: &[&str]) -> Volume {
        Volume {
            name: name.into(),
            driver: "local".into(),
            mountpoint: "/x".into(),
            created: "2026-01-01T00:00:00Z".into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
            options: BTreeMap::new(),
            anonymous: false,
            users: users.iter().map(|u| u.to_string()).collect(),
            populated: false,
            active: vec![],
            mounted: false,
            active_boot: String::new(),
            size_limit: None,
        }
    }

    fn p(s: &str) -> Filter {
        s.parse().unwrap()
    }

    #[test]
    fn parses_every_form() {
        assert_eq!(
            p("label=k"),
            Filter::Label {
                key: "k".into(),
                value: None,
                negate: false
            }
        );
        assert_eq!(
            p("label=k=v=w"),
            Filter::Label {
                key: "k".into(),
                value: Some("v=w".into()),
                negate: false
            }
        );
        assert_eq!(
            p("label!=k"),
            Filter::Label {
                key: "k".into(),
                value: None,
                negate: true
            }
        );
        assert_eq!(
            p("label!=k=v"),
            Filter::Label {
                key: "k".into(),
                value: Some("v".into()),
                negate: true
            }
        );
        assert_eq!(p("dangling=true"), Filter::Dangling(true));
        assert_eq!(p("dangling=1"), Filter::Dangling(true));
        assert_eq!(p("dangling=false"), Filter::Dangling(false));
        assert_eq!(p("dangling=0"), Filter::Dangling(false));
        assert_eq!(p("name=todo"), Filter::Name("todo".into()));
        assert_eq!(p("driver=local"), Filter::Driver("local".into()));
    }

    #[test]
    fn bad_filters_are_quoted() {
        for bad in [
            "label",
            "label=",
            "label==v",
            "dangling=yes",
            "size=3",
            "name=",
            "=x",
        ] {
            let err = bad.parse::<Filter>().expect_err(bad);
            assert!(err.to_string().contains(&format!("{bad:?}")), "{err}");
        }
    }

    #[test]
    fn label_matching() {
        let v = vol("data", &[("env", "prod"), ("team", "a")], &[]);
        assert!(matches_all(&[p("label=env")], &v));
        assert!(matches_all(&[p("label=env=prod")], &v));
        assert!(!matches_all(&[p("label=env=dev")], &v));
        assert!(!matches_all(&[p("label=nope")], &v));
        assert!(!matches_all(&[p("label!=env")], &v));
        assert!(!matches_all(&[p("label!=env=prod")], &v));
        assert!(matches_all(&[p("label!=env=dev")], &v));
        assert!(matches_all(&[p("label!=nope")], &v));
        // Labels are ANDed.
        assert!(matches_all(&[p("label=env"), p("label=team=a")], &v));
        assert!(!matches_all(&[p("label=env"), p("label=team=b")], &v));
    }

    #[test]
    fn dangling_name_driver_matching() {
        let free = vol("todo-list", &[], &[]);
        let used = vol("cache", &[], &["c1"]);
        assert!(matches_all(&[p("dangling=true")], &free));
        assert!(!matches_all(&[p("dangling=true")], &used));
        assert!(matches_all(&[p("dangling=false")], &used));
        assert!(matches_all(&[p("name=do-li")], &free));
        assert!(!matches_all(&[p("name=cache")], &free));
        // Names are ORed, and ANDed with the rest.
        assert!(matches_all(&[p("name=cache"), p("name=todo")], &free));
        assert!(!matches_all(
            &[p("name=cache"), p("name=todo"), p("dangling=false")],
            &free
        ));
        assert!(matches_all(&[p("driver=local")], &free));
        assert!(!matches_all(&[p("driver=nfs")], &free));
        assert!(matches_all(&[], &used));
    }
}
