use crate::PackageError;
use std::fmt;
use std::str::FromStr;

/// A package's identity: `namespace:name@version`, e.g.
/// `acme:checkout-latency@1.2.0`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PackageId {
    /// The publisher's namespace (trusted keys are per namespace).
    pub namespace: String,
    /// The scenario's name, as its `describe()` says.
    pub name: String,
    /// Its version, as its `describe()` says.
    pub version: semver::Version,
}

/// What a drill or `install` asks for: `namespace:name`, optionally
/// `@REQ` (a semver requirement such as `^1.2` or `=1.2.0`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageReq {
    /// The namespace.
    pub namespace: String,
    /// The name.
    pub name: String,
    /// The versions that match (any, if none).
    pub req: Option<semver::VersionReq>,
}

/// Check a namespace or name: kebab-case words of lowercase ASCII letters
/// and digits, starting with a letter, at most 64 characters, as WIT
/// package names are. Nothing else reaches a path or a registry URL, so
/// `..`, `/`, `%` and the like are refused here.
pub fn check_label(what: &str, label: &str) -> Result<(), PackageError> {
    let ok = !label.is_empty()
        && label.len() <= 64
        && label.starts_with(|c: char| c.is_ascii_lowercase())
        && label.split('-').all(|w| {
            !w.is_empty()
                && w.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        });
    if ok {
        Ok(())
    } else {
        Err(PackageError::BadId(format!(
            "{what} {label:?} is not valid: use lowercase letters, digits and single hyphens, starting with a letter, at most 64 characters (e.g. `acme`, `checkout-latency`)"
        )))
    }
}

fn split(text: &str) -> Result<(String, String, Option<&str>), PackageError> {
    let (pkg, version) = match text.split_once('@') {
        Some((p, v)) => (p, Some(v)),
        None => (text, None),
    };
    let Some((namespace, name)) = pkg.split_once(':') else {
        return Err(PackageError::BadId(format!(
            "{text:?} is not a package: write NAMESPACE:NAME[@VERSION], e.g. `acme:checkout-latency@1.2.0`"
        )));
    };
    check_label("namespace", namespace)?;
    check_label("name", name)?;
    Ok((namespace.to_string(), name.to_string(), version))
}

impl FromStr for PackageId {
    type Err = PackageError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (namespace, name, version) = split(text)?;
        let Some(version) = version else {
            return Err(PackageError::BadId(format!(
                "{text:?} names no version: write {namespace}:{name}@VERSION, e.g. @1.0.0"
            )));
        };
        let version = semver::Version::parse(version).map_err(|e| {
            PackageError::BadId(format!("{text:?}: version {version:?} is not semver ({e})"))
        })?;
        Ok(PackageId {
            namespace,
            name,
            version,
        })
    }
}

impl FromStr for PackageReq {
    type Err = PackageError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (namespace, name, req) = split(text)?;
        let req = match req {
            None => None,
            Some(r) => Some(semver::VersionReq::parse(r).map_err(|e| {
                PackageError::BadId(format!(
                    "{text:?}: {r:?} is not a version requirement ({e}); e.g. `^1.2`, `=1.2.0`"
                ))
            })?),
        };
        Ok(PackageReq {
            namespace,
            name,
            req,
        })
    }
}

impl PackageReq {
    /// Whether `version` satisfies it.
    pub fn matches(&self, version: &semver::Version) -> bool {
        self.req.as_ref().is_none_or(|r| r.matches(version))
    }
}

impl fmt::Display for PackageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}@{}", self.namespace, self.name, self.version)
    }
}

impl fmt::Display for PackageReq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.namespace, self.name)?;
        match &self.req {
            Some(r) => write!(f, "@{r}"),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_parse_and_hostile_labels_are_refused() {
        let id: PackageId = "acme:checkout-latency@1.2.0".parse().unwrap();
        assert_eq!(id.to_string(), "acme:checkout-latency@1.2.0");
        let req: PackageReq = "acme:checkout-latency@^1.2".parse().unwrap();
        assert!(req.matches(&"1.3.0".parse().unwrap()));
        assert!(!req.matches(&"2.0.0".parse().unwrap()));
        for bad in [
            "acme:../etc@1.0.0",
            "../acme:x@1.0.0",
            "acme:a/b@1.0.0",
            "Acme:x@1.0.0",
            "acme:x--y@1.0.0",
            "acme:-x@1.0.0",
            "acme:x%2f@1.0.0",
            "acme:@1.0.0",
            "acme:x@1.0",
            "acmex@1.0.0",
            "acme:x",
        ] {
            assert!(bad.parse::<PackageId>().is_err(), "{bad}");
        }
        assert!("acme:x@not-a-req".parse::<PackageReq>().is_err());
    }
}
