//! Resource quantities as the API writes them (`100m`, `1.5`, `128Mi`, `1e3`) and the
//! amounts of resources a pod requests or a node offers, added and compared.

use std::collections::BTreeMap;

use serde_json::Value;

/// A resource quantity (`100m`, `1.5`, `128Mi`, `1e3`, `2G`) times 1000, rounded up;
/// `None` if it does not parse or does not fit.
pub fn milli_value(s: &str) -> Option<i128> {
    let s = s.trim();
    let split = s
        .char_indices()
        .find(|(i, c)| !(c.is_ascii_digit() || *c == '.' || ((*c == '+' || *c == '-') && *i == 0)))
        .map(|(i, _)| i)
        .unwrap_or(s.len());
    let (number, suffix) = s.split_at(split);
    let (negative, number) = match number.strip_prefix('-') {
        Some(n) => (true, n),
        None => (false, number.strip_prefix('+').unwrap_or(number)),
    };
    let (whole, frac) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() && frac.is_empty() || whole.len() + frac.len() > 30 {
        return None;
    }
    let mut mantissa: i128 = 0;
    for c in whole.chars().chain(frac.chars()) {
        mantissa = mantissa
            .checked_mul(10)?
            .checked_add(i128::from(c.to_digit(10)?))?;
    }
    let (binary, decimal): (u32, i32) = match suffix {
        "" => (0, 0),
        "Ki" => (10, 0),
        "Mi" => (20, 0),
        "Gi" => (30, 0),
        "Ti" => (40, 0),
        "Pi" => (50, 0),
        "Ei" => (60, 0),
        "n" => (0, -9),
        "u" => (0, -6),
        "m" => (0, -3),
        "k" => (0, 3),
        "M" => (0, 6),
        "G" => (0, 9),
        "T" => (0, 12),
        "P" => (0, 15),
        "E" => (0, 18),
        other => {
            let exp = other.strip_prefix(['e', 'E'])?;
            (0, exp.parse::<i32>().ok().filter(|e| e.abs() <= 30)?)
        }
    };
    let mut value = mantissa.checked_mul(1i128.checked_shl(binary)?)?;
    let exp = decimal + 3 - i32::try_from(frac.len()).ok()?;
    if exp >= 0 {
        value = value.checked_mul(10i128.checked_pow(exp.unsigned_abs())?)?;
    } else {
        let div = 10i128.checked_pow(exp.unsigned_abs())?;
        value = value.checked_add(div - 1)? / div;
    }
    Some(if negative { -value } else { value })
}

/// The quantity in whole units, rounded up (memory in bytes, pods, extended resources).
pub fn unit_value(s: &str) -> Option<i64> {
    let m = milli_value(s)?;
    i64::try_from(m.checked_add(999)?.div_euclid(1000)).ok()
}

/// A quantity as the API carries it: a string, or (rarely) a JSON number.
pub(super) fn quantity_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Amounts of resources: cpu in millicores, everything else in units.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resources {
    pub cpu: i64,
    pub memory: i64,
    pub ephemeral: i64,
    /// Extended resources, by name.
    pub other: BTreeMap<String, i64>,
}

impl Resources {
    /// From a `{name: quantity}` map; unparsable quantities count as zero (the API
    /// server rejects them before they get here).
    pub fn from_map(map: &BTreeMap<String, Value>) -> Self {
        let mut r = Resources::default();
        for (name, q) in map {
            let Some(q) = quantity_text(q) else { continue };
            match name.as_str() {
                "cpu" => r.cpu = clamp(milli_value(&q)),
                "memory" => r.memory = unit_value(&q).unwrap_or(0),
                "ephemeral-storage" => r.ephemeral = unit_value(&q).unwrap_or(0),
                "pods" => {}
                n if n.starts_with("hugepages-") => {}
                n => {
                    r.other.insert(n.to_string(), unit_value(&q).unwrap_or(0));
                }
            }
        }
        r
    }

    pub fn is_zero(&self) -> bool {
        self.cpu == 0
            && self.memory == 0
            && self.ephemeral == 0
            && self.other.values().all(|v| *v == 0)
    }

    pub fn add(&mut self, o: &Resources) {
        self.cpu = self.cpu.saturating_add(o.cpu);
        self.memory = self.memory.saturating_add(o.memory);
        self.ephemeral = self.ephemeral.saturating_add(o.ephemeral);
        for (k, v) in &o.other {
            let e = self.other.entry(k.clone()).or_default();
            *e = e.saturating_add(*v);
        }
    }

    pub fn sub(&mut self, o: &Resources) {
        self.cpu = self.cpu.saturating_sub(o.cpu);
        self.memory = self.memory.saturating_sub(o.memory);
        self.ephemeral = self.ephemeral.saturating_sub(o.ephemeral);
        for (k, v) in &o.other {
            let e = self.other.entry(k.clone()).or_default();
            *e = e.saturating_sub(*v);
        }
        self.other.retain(|_, v| *v != 0);
    }

    /// Per resource, the larger of the two.
    pub fn max(&mut self, o: &Resources) {
        self.cpu = self.cpu.max(o.cpu);
        self.memory = self.memory.max(o.memory);
        self.ephemeral = self.ephemeral.max(o.ephemeral);
        for (k, v) in &o.other {
            let e = self.other.entry(k.clone()).or_default();
            *e = (*e).max(*v);
        }
    }
}

fn clamp(v: Option<i128>) -> i64 {
    v.and_then(|v| i64::try_from(v).ok()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_parse_as_the_api_writes_them() {
        let cases: [(&str, Option<i128>); 12] = [
            ("100m", Some(100)),
            ("1", Some(1000)),
            ("0.5", Some(500)),
            ("1.5", Some(1500)),
            ("128Mi", Some(128 * 1024 * 1024 * 1000)),
            ("1Gi", Some((1 << 30) * 1000)),
            ("2G", Some(2_000_000_000_000)),
            ("1e3", Some(1_000_000)),
            ("1k", Some(1_000_000)),
            ("250u", Some(1)),
            ("abc", None),
            ("", None),
        ];
        for (q, want) in cases {
            assert_eq!(milli_value(q), want, "{q}");
        }
        assert_eq!(unit_value("1.5Ki"), Some(1536));
        for huge in [
            "999999999999999999999999999999Ei",
            "9e30",
            "1e-31",
            "1.2.3",
            "--1",
        ] {
            assert_eq!(
                unit_value(huge),
                None,
                "{huge}: out of range or malformed, no panic"
            );
        }
    }
}
