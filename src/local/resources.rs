//! Unreserved agent resources: the `--resources` string, arithmetic for offers and launches, and
//! the three ways they are rendered into protobuf (agent info, offers, launches).
//!
//! Only the default role `*` exists in the embedded cluster: reservations, persistent volumes,
//! revocable and shared resources are refused with a message saying so. Scalars are kept in
//! thousandths, which is the precision Mesos itself rounds to, so `4 - 0.1 - 0.1` is exactly
//! `3.8` and comparisons need no tolerance.

use std::fmt;

use shardex_mesos::proto::v1::{self, value};

/// One named resource's quantity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Quantity {
    /// Thousandths (`0.1` cpus is 100).
    Scalar(i64),
    /// Sorted, non-overlapping, non-adjacent inclusive ranges.
    Ranges(Vec<(u64, u64)>),
    /// Sorted, de-duplicated items.
    Set(Vec<String>),
}

/// A bag of unreserved resources, in the order their names first appeared.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resources {
    entries: Vec<(String, Quantity)>,
}

/// Why a resource string or a `Resource` message was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResourceError {
    #[error("invalid resource '{item}': {reason}")]
    Parse { item: String, reason: String },
    #[error("{0}")]
    Invalid(String),
}

fn parse_error(item: &str, reason: impl Into<String>) -> ResourceError {
    ResourceError::Parse {
        item: item.to_owned(),
        reason: reason.into(),
    }
}

/// Thousandths of `value`, rounded like Mesos' fixed-point scalars.
fn to_milli(value: f64) -> i64 {
    (value * 1000.0).round() as i64
}

fn from_milli(milli: i64) -> f64 {
    milli as f64 / 1000.0
}

impl Resources {
    /// Parses Mesos' `--resources` format: `cpus:4;mem:4096;disk:10240;ports:[31000-32000]`,
    /// sets as `{a,b}`. A role other than `*` (`cpus(ops):2`) is refused.
    pub fn parse(text: &str) -> Result<Resources, ResourceError> {
        let mut resources = Resources::default();
        for item in text.split(';').map(str::trim).filter(|s| !s.is_empty()) {
            let (name, value) = item
                .split_once(':')
                .ok_or_else(|| parse_error(item, "expected 'name:value'"))?;
            let mut name = name.trim();
            if let Some(open) = name.find('(') {
                let role = name[open + 1..].trim_end_matches(')');
                if role != "*" {
                    return Err(parse_error(
                        item,
                        format!(
                            "role '{role}' is not supported: the embedded agent offers only \
                             unreserved resources (role '*')"
                        ),
                    ));
                }
                name = &name[..open];
            }
            if name.is_empty() {
                return Err(parse_error(item, "the resource name is empty"));
            }
            let value = value.trim();
            let quantity = if let Some(inner) = value.strip_prefix('[') {
                let inner = inner
                    .strip_suffix(']')
                    .ok_or_else(|| parse_error(item, "a range list must end with ']'"))?;
                let mut ranges = Vec::new();
                for range in inner.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                    let (begin, end) = range.split_once('-').ok_or_else(|| {
                        parse_error(item, format!("range '{range}' is not 'begin-end'"))
                    })?;
                    let begin: u64 = begin.trim().parse().map_err(|_| {
                        parse_error(item, format!("range start '{begin}' is not a number"))
                    })?;
                    let end: u64 = end.trim().parse().map_err(|_| {
                        parse_error(item, format!("range end '{end}' is not a number"))
                    })?;
                    if begin > end {
                        return Err(parse_error(
                            item,
                            format!("range '{range}' ends before it starts"),
                        ));
                    }
                    ranges.push((begin, end));
                }
                Quantity::Ranges(normalize_ranges(ranges))
            } else if let Some(inner) = value.strip_prefix('{') {
                let inner = inner
                    .strip_suffix('}')
                    .ok_or_else(|| parse_error(item, "a set must end with '}'"))?;
                let items = inner
                    .split(',')
                    .map(|s| s.trim().to_owned())
                    .filter(|s| !s.is_empty())
                    .collect();
                Quantity::Set(normalize_set(items))
            } else {
                let number: f64 = value.parse().map_err(|_| {
                    parse_error(
                        item,
                        format!("'{value}' is not a number, a [range] or a {{set}}"),
                    )
                })?;
                if !number.is_finite() || number < 0.0 {
                    return Err(parse_error(
                        item,
                        "a scalar must be a finite non-negative number",
                    ));
                }
                Quantity::Scalar(to_milli(number))
            };
            resources.add_entry(name, quantity)?;
        }
        Ok(resources)
    }

    // `Resource.role` is deprecated in the proto but still what Mesos writes for role `*`.
    #[allow(deprecated)]
    /// Reads `Resource` messages as a framework sends them, refusing what the embedded
    /// cluster does not model. The error text follows Mesos' "Invalid resources: ..." style.
    pub fn from_protos(protos: &[v1::Resource]) -> Result<Resources, ResourceError> {
        let mut resources = Resources::default();
        for resource in protos {
            if resource.name.is_empty() {
                return Err(ResourceError::Invalid("Empty resource name".to_owned()));
            }
            let role_ok = resource.role.as_deref().is_none_or(|role| role == "*")
                && resource
                    .allocation_info
                    .as_ref()
                    .and_then(|info| info.role.as_deref())
                    .is_none_or(|role| role == "*");
            if !role_ok || resource.reservation.is_some() || !resource.reservations.is_empty() {
                return Err(ResourceError::Invalid(format!(
                    "Resource '{}' is reserved; the embedded agent has only unreserved resources",
                    resource.name
                )));
            }
            if resource.disk.is_some()
                || resource.revocable.is_some()
                || resource.shared.is_some()
                || resource.provider_id.is_some()
            {
                return Err(ResourceError::Invalid(format!(
                    "Resource '{}' uses disk, revocable, shared or provider fields, which the \
                     embedded agent does not support",
                    resource.name
                )));
            }
            let quantity = match value::Type::try_from(resource.r#type) {
                Ok(value::Type::Scalar) => {
                    let scalar = resource.scalar.as_ref().ok_or_else(|| {
                        ResourceError::Invalid(format!(
                            "Invalid scalar resource '{}': missing 'scalar'",
                            resource.name
                        ))
                    })?;
                    if !scalar.value.is_finite() || scalar.value < 0.0 {
                        return Err(ResourceError::Invalid(format!(
                            "Invalid scalar resource '{}': value {} is negative or not finite",
                            resource.name, scalar.value
                        )));
                    }
                    Quantity::Scalar(to_milli(scalar.value))
                }
                Ok(value::Type::Ranges) => {
                    let ranges = resource.ranges.as_ref().ok_or_else(|| {
                        ResourceError::Invalid(format!(
                            "Invalid ranges resource '{}': missing 'ranges'",
                            resource.name
                        ))
                    })?;
                    let mut list = Vec::new();
                    for range in &ranges.range {
                        if range.begin > range.end {
                            return Err(ResourceError::Invalid(format!(
                                "Invalid ranges resource '{}': range [{}-{}] ends before it \
                                 starts",
                                resource.name, range.begin, range.end
                            )));
                        }
                        list.push((range.begin, range.end));
                    }
                    Quantity::Ranges(normalize_ranges(list))
                }
                Ok(value::Type::Set) => {
                    let set = resource.set.as_ref().ok_or_else(|| {
                        ResourceError::Invalid(format!(
                            "Invalid set resource '{}': missing 'set'",
                            resource.name
                        ))
                    })?;
                    Quantity::Set(normalize_set(set.item.clone()))
                }
                _ => {
                    return Err(ResourceError::Invalid(format!(
                        "Unsupported type for resource '{}'",
                        resource.name
                    )));
                }
            };
            resources.add_entry(&resource.name, quantity)?;
        }
        Ok(resources)
    }

    fn add_entry(&mut self, name: &str, quantity: Quantity) -> Result<(), ResourceError> {
        let single = Resources {
            entries: vec![(name.to_owned(), quantity)],
        };
        if let Some((_, existing)) = self.entries.iter().find(|(n, _)| n == name)
            && std::mem::discriminant(existing) != std::mem::discriminant(&single.entries[0].1)
        {
            return Err(ResourceError::Invalid(format!(
                "Resource '{name}' is given with two different types"
            )));
        }
        *self = self.plus(&single);
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.entries.iter().all(|(_, q)| match q {
            Quantity::Scalar(v) => *v == 0,
            Quantity::Ranges(r) => r.is_empty(),
            Quantity::Set(s) => s.is_empty(),
        })
    }

    /// The scalar named `name`, e.g. `cpus`.
    pub fn scalar(&self, name: &str) -> Option<f64> {
        self.entries.iter().find_map(|(n, q)| match q {
            Quantity::Scalar(v) if n == name => Some(from_milli(*v)),
            _ => None,
        })
    }

    /// `self + other`, keeping `self`'s order and appending new names.
    pub fn plus(&self, other: &Resources) -> Resources {
        let mut out = self.clone();
        for (name, quantity) in &other.entries {
            match out.entries.iter_mut().find(|(n, _)| n == name) {
                Some((_, existing)) => match (existing, quantity) {
                    (Quantity::Scalar(a), Quantity::Scalar(b)) => *a = a.saturating_add(*b),
                    (Quantity::Ranges(a), Quantity::Ranges(b)) => {
                        let mut all = a.clone();
                        all.extend(b.iter().copied());
                        *a = normalize_ranges(all);
                    }
                    (Quantity::Set(a), Quantity::Set(b)) => {
                        let mut all = a.clone();
                        all.extend(b.iter().cloned());
                        *a = normalize_set(all);
                    }
                    // Mismatched types never get this far (add_entry refuses them); keep the
                    // existing value rather than panic.
                    _ => {}
                },
                None => out.entries.push((name.clone(), quantity.clone())),
            }
        }
        out
    }

    /// `self - other`, never going below empty.
    pub fn minus(&self, other: &Resources) -> Resources {
        let mut out = self.clone();
        for (name, quantity) in &other.entries {
            if let Some((_, existing)) = out.entries.iter_mut().find(|(n, _)| n == name) {
                match (existing, quantity) {
                    (Quantity::Scalar(a), Quantity::Scalar(b)) => *a = a.saturating_sub(*b).max(0),
                    (Quantity::Ranges(a), Quantity::Ranges(b)) => *a = subtract_ranges(a, b),
                    (Quantity::Set(a), Quantity::Set(b)) => a.retain(|item| !b.contains(item)),
                    _ => {}
                }
            }
        }
        out
    }

    /// Whether every quantity of `other` fits into `self`.
    pub fn contains(&self, other: &Resources) -> bool {
        other.entries.iter().all(|(name, needed)| {
            let have = self.entries.iter().find(|(n, _)| n == name).map(|(_, q)| q);
            match (have, needed) {
                (_, Quantity::Scalar(0)) => true,
                (_, Quantity::Ranges(r)) if r.is_empty() => true,
                (_, Quantity::Set(s)) if s.is_empty() => true,
                (Some(Quantity::Scalar(a)), Quantity::Scalar(b)) => a >= b,
                (Some(Quantity::Ranges(a)), Quantity::Ranges(b)) => b
                    .iter()
                    .all(|(lo, hi)| a.iter().any(|(alo, ahi)| alo <= lo && hi <= ahi)),
                (Some(Quantity::Set(a)), Quantity::Set(b)) => b.iter().all(|i| a.contains(i)),
                _ => false,
            }
        })
    }

    /// As the agent reports them in `AgentInfo` (no role), in configuration order.
    pub fn to_agent_protos(&self) -> Vec<v1::Resource> {
        self.entries
            .iter()
            .filter(|(_, q)| !quantity_is_empty(q))
            .map(|(name, q)| to_proto(name, q, None))
            .collect()
    }

    /// As the master offers them: `role: "*"`, no `allocation_info` (frameworks here are not
    /// MULTI_ROLE), non-scalar resources first — the order a real master's allocator produces
    /// (captured offers list `ports` before `cpus`, `mem`, `disk`).
    pub fn to_offer_protos(&self) -> Vec<v1::Resource> {
        let non_scalar = self
            .entries
            .iter()
            .filter(|(_, q)| !matches!(q, Quantity::Scalar(_)));
        let scalar = self
            .entries
            .iter()
            .filter(|(_, q)| matches!(q, Quantity::Scalar(_)));
        non_scalar
            .chain(scalar)
            .filter(|(_, q)| !quantity_is_empty(q))
            .map(|(name, q)| to_proto(name, q, Some("*")))
            .collect()
    }
}

fn quantity_is_empty(q: &Quantity) -> bool {
    match q {
        Quantity::Scalar(v) => *v == 0,
        Quantity::Ranges(r) => r.is_empty(),
        Quantity::Set(s) => s.is_empty(),
    }
}

// `Resource.role` is deprecated in the proto but still what Mesos writes for role `*`.
#[allow(deprecated)]
fn to_proto(name: &str, quantity: &Quantity, role: Option<&str>) -> v1::Resource {
    let mut resource = v1::Resource {
        name: name.to_owned(),
        role: role.map(str::to_owned),
        ..Default::default()
    };
    match quantity {
        Quantity::Scalar(v) => {
            resource.r#type = value::Type::Scalar as i32;
            resource.scalar = Some(value::Scalar {
                value: from_milli(*v),
            });
        }
        Quantity::Ranges(ranges) => {
            resource.r#type = value::Type::Ranges as i32;
            resource.ranges = Some(value::Ranges {
                range: ranges
                    .iter()
                    .map(|&(begin, end)| value::Range { begin, end })
                    .collect(),
            });
        }
        Quantity::Set(items) => {
            resource.r#type = value::Type::Set as i32;
            resource.set = Some(value::Set {
                item: items.clone(),
            });
        }
    }
    resource
}

/// Adds `allocation_info { role: "*" }` to resources the framework sent, as the master does
/// before it hands a launch to the agent (the captures show it in LAUNCH and SUBSCRIBED).
pub fn inject_allocation_info(resources: &mut [v1::Resource]) {
    for resource in resources {
        if resource.allocation_info.is_none() {
            resource.allocation_info = Some(v1::resource::AllocationInfo {
                role: Some("*".to_owned()),
            });
        }
    }
}

fn normalize_ranges(mut ranges: Vec<(u64, u64)>) -> Vec<(u64, u64)> {
    ranges.sort_unstable();
    let mut out: Vec<(u64, u64)> = Vec::with_capacity(ranges.len());
    for (begin, end) in ranges {
        match out.last_mut() {
            Some((_, last_end)) if begin <= last_end.saturating_add(1) => {
                *last_end = (*last_end).max(end);
            }
            _ => out.push((begin, end)),
        }
    }
    out
}

fn subtract_ranges(from: &[(u64, u64)], remove: &[(u64, u64)]) -> Vec<(u64, u64)> {
    let mut out = from.to_vec();
    for &(rlo, rhi) in remove {
        let mut next = Vec::with_capacity(out.len() + 1);
        for (lo, hi) in out {
            if rhi < lo || rlo > hi {
                next.push((lo, hi));
                continue;
            }
            if lo < rlo {
                next.push((lo, rlo - 1));
            }
            if rhi < hi {
                next.push((rhi + 1, hi));
            }
        }
        out = next;
    }
    out
}

fn normalize_set(mut items: Vec<String>) -> Vec<String> {
    items.sort();
    items.dedup();
    items
}

impl Resources {
    /// Mesos' rendering of resources allocated to role `*`, as in launch validation errors:
    /// `cpus(allocated: *):0.1; mem(allocated: *):32`.
    pub fn display_allocated(&self) -> String {
        let mut out = String::new();
        let _ = write_entries(self, "(allocated: *)", &mut out);
        out
    }
}

fn write_entries(resources: &Resources, qualifier: &str, f: &mut impl fmt::Write) -> fmt::Result {
    let mut first = true;
    for (name, quantity) in &resources.entries {
        if quantity_is_empty(quantity) {
            continue;
        }
        if !first {
            f.write_str("; ")?;
        }
        first = false;
        match quantity {
            Quantity::Scalar(v) => write!(f, "{name}{qualifier}:{}", from_milli(*v))?,
            Quantity::Ranges(ranges) => {
                let text: Vec<String> = ranges.iter().map(|(a, b)| format!("{a}-{b}")).collect();
                write!(f, "{name}{qualifier}:[{}]", text.join(", "))?;
            }
            Quantity::Set(items) => write!(f, "{name}{qualifier}:{{{}}}", items.join(", "))?,
        }
    }
    if first {
        f.write_str("{}")?;
    }
    Ok(())
}

impl fmt::Display for Resources {
    /// Mesos' `stringify(Resources)`: `cpus:0.1; mem:32; ports:[31000-32000]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_entries(self, "", f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(deprecated)]
    fn parses_the_agent_flag_and_does_fixed_point_arithmetic() {
        let total = Resources::parse("cpus:4;mem:4096;disk:10240;ports:[31000-32000]").unwrap();
        assert_eq!(total.scalar("cpus"), Some(4.0));
        let task = Resources::parse("cpus:0.1;mem:32").unwrap();
        let left = total.minus(&task).minus(&task).minus(&task);
        assert_eq!(left.scalar("cpus"), Some(3.7));
        assert_eq!(left.scalar("mem"), Some(4000.0));
        assert!(total.contains(&task));
        assert!(!task.contains(&total));
        assert_eq!(
            left.to_string(),
            "cpus:3.7; mem:4000; disk:10240; ports:[31000-32000]"
        );
        let names: Vec<String> = total
            .to_offer_protos()
            .into_iter()
            .map(|r| r.name)
            .collect();
        assert_eq!(names, ["ports", "cpus", "mem", "disk"]);
        assert!(
            total
                .to_offer_protos()
                .iter()
                .all(|r| r.role.as_deref() == Some("*"))
        );
        assert!(total.to_agent_protos().iter().all(|r| r.role.is_none()));
    }

    #[test]
    fn ranges_and_sets() {
        let ports = Resources::parse("ports:[31000-32000]").unwrap();
        let used = Resources::parse("ports:[31005-31005, 31010-31020]").unwrap();
        let left = ports.minus(&used);
        assert_eq!(
            left.to_string(),
            "ports:[31000-31004, 31006-31009, 31021-32000]"
        );
        assert!(!left.contains(&used));
        assert!(left.plus(&used).contains(&ports));
        let gpus = Resources::parse("zones:{b,a,a}").unwrap();
        assert_eq!(gpus.to_string(), "zones:{a, b}");
    }

    #[test]
    fn refuses_bad_input_clearly() {
        let error = Resources::parse("cpus:four").unwrap_err().to_string();
        assert!(error.contains("'four' is not a number"), "{error}");
        let error = Resources::parse("cpus(ops):2").unwrap_err().to_string();
        assert!(error.contains("role 'ops' is not supported"), "{error}");
        assert!(Resources::parse("ports:[5-1]").is_err());
        assert!(Resources::parse("cpus").is_err());
        assert!(Resources::parse("cpus:-1").is_err());
        assert_eq!(Resources::parse("").unwrap(), Resources::default());
    }

    #[test]
    fn absurd_quantities_saturate_instead_of_panicking() {
        let huge = Resources::parse("cpus:1e300").unwrap();
        let sum = huge.plus(&huge);
        assert!(sum.contains(&huge));
        assert!(huge.minus(&sum).is_empty());
    }
}
