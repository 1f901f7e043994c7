//! The physics of one decoded token (DESIGN.md, "The physics we design against"): every byte
//! not resident crosses disk → host → device, and the stages overlap, so the token cannot take
//! less than the slowest of streamed bytes / disk rate, copied bytes / PCIe rate and the compute
//! time. Pure arithmetic over rates measured elsewhere, so it is tested on its own.

use std::fmt;

use sluice_loader::GgmlType;

/// A link of the hierarchy that can set the pace.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Link {
    Disk,
    Pcie,
    Compute,
}

impl fmt::Display for Link {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Link::Disk => "disk",
            Link::Pcie => "pcie",
            Link::Compute => "compute",
        })
    }
}

/// What one token asks of each link.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Demand {
    /// Bytes read from disk per token.
    pub streamed_bytes: u64,
    /// Bytes copied host → device per token.
    pub copied_bytes: u64,
    /// Compute seconds per token.
    pub compute_s: f64,
}

/// Measured link rates; `None` for a link not measured (no GPU).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rates {
    pub disk_gb_per_s: Option<f64>,
    pub pcie_gb_per_s: Option<f64>,
}

/// The bound on one token's time and the link that sets it.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct Bound {
    pub disk_s: f64,
    pub pcie_s: f64,
    pub compute_s: f64,
    /// max(disk_s, pcie_s, compute_s).
    pub bound_s: f64,
    pub bottleneck: Link,
    pub predicted_tok_per_s: f64,
}

/// The bound for `demand` at `rates`; an error says which link carries bytes but has no rate.
pub fn bound(demand: &Demand, rates: &Rates) -> Result<Bound, String> {
    let time = |bytes: u64, rate: Option<f64>, link: Link| -> Result<f64, String> {
        if bytes == 0 {
            return Ok(0.0);
        }
        match rate {
            Some(r) if r.is_finite() && r > 0.0 => Ok(bytes as f64 / (r * 1e9)),
            _ => Err(format!(
                "{bytes} bytes per token cross the {link} link but its rate was not measured"
            )),
        }
    };
    let disk_s = time(demand.streamed_bytes, rates.disk_gb_per_s, Link::Disk)?;
    let pcie_s = time(demand.copied_bytes, rates.pcie_gb_per_s, Link::Pcie)?;
    let compute_s = demand.compute_s;
    if !(compute_s.is_finite() && compute_s > 0.0) {
        return Err(format!(
            "compute time per token {compute_s} s is not positive"
        ));
    }
    // Ties go to the later link: with nothing streamed, compute sets the pace.
    let (bottleneck, bound_s) = [
        (Link::Disk, disk_s),
        (Link::Pcie, pcie_s),
        (Link::Compute, compute_s),
    ]
    .into_iter()
    .fold((Link::Disk, f64::NEG_INFINITY), |best, (l, t)| {
        if t >= best.1 {
            (l, t)
        } else {
            best
        }
    });
    Ok(Bound {
        disk_s,
        pcie_s,
        compute_s,
        bound_s,
        bottleneck,
        predicted_tok_per_s: 1.0 / bound_s,
    })
}

/// Seconds to run every weight matrix of one token once: each type's bytes over that type's
/// measured matrix × vector rate (GB/s). Types without a rate (small vectors) use `fallback`.
pub fn compute_seconds(
    bytes_by_type: &[(GgmlType, u64)],
    gb_per_s: &[(GgmlType, f64)],
    fallback_gb_per_s: f64,
) -> f64 {
    bytes_by_type
        .iter()
        .map(|&(ty, bytes)| {
            let rate = gb_per_s
                .iter()
                .find(|(t, _)| *t == ty)
                .map_or(fallback_gb_per_s, |&(_, r)| r);
            bytes as f64 / (rate * 1e9)
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    const GB: u64 = 1_000_000_000;

    fn rates(disk: Option<f64>, pcie: Option<f64>) -> Rates {
        Rates {
            disk_gb_per_s: disk,
            pcie_gb_per_s: pcie,
        }
    }

    #[test]
    fn the_slowest_link_sets_the_pace() {
        let d = Demand {
            streamed_bytes: 6 * GB,
            copied_bytes: 0,
            compute_s: 0.5,
        };
        let b = bound(&d, &rates(Some(3.0), None)).expect("bound");
        assert_eq!(b.bottleneck, Link::Disk);
        assert!((b.disk_s - 2.0).abs() < 1e-12 && (b.bound_s - 2.0).abs() < 1e-12);
        assert!((b.predicted_tok_per_s - 0.5).abs() < 1e-12);

        let d = Demand {
            streamed_bytes: GB,
            copied_bytes: 20 * GB,
            compute_s: 0.1,
        };
        let b = bound(&d, &rates(Some(7.0), Some(10.0))).expect("bound");
        assert_eq!(b.bottleneck, Link::Pcie);
        assert!((b.pcie_s - 2.0).abs() < 1e-12);
    }

    #[test]
    fn nothing_streamed_is_compute_bound() {
        let d = Demand {
            streamed_bytes: 0,
            copied_bytes: 0,
            compute_s: 0.01,
        };
        let b = bound(&d, &rates(None, None)).expect("bound");
        assert_eq!(b.bottleneck, Link::Compute);
        assert_eq!((b.disk_s, b.pcie_s), (0.0, 0.0));
        assert!((b.predicted_tok_per_s - 100.0).abs() < 1e-9);
    }

    #[test]
    fn a_link_with_bytes_needs_a_rate() {
        let d = Demand {
            streamed_bytes: 0,
            copied_bytes: 1,
            compute_s: 1.0,
        };
        let e = bound(&d, &rates(Some(1.0), None)).expect_err("no PCIe rate");
        assert!(e.contains("pcie"), "{e}");
        let d = Demand {
            streamed_bytes: 1,
            copied_bytes: 0,
            compute_s: 1.0,
        };
        assert!(bound(&d, &rates(Some(0.0), None)).is_err());
        let d = Demand {
            streamed_bytes: 0,
            copied_bytes: 0,
            compute_s: 0.0,
        };
        assert!(bound(&d, &rates(None, None)).is_err());
    }

    #[test]
    fn compute_time_sums_each_type_at_its_rate() {
        let bytes = [
            (GgmlType::Q4K, 4 * GB),
            (GgmlType::Q8_0, 2 * GB),
            (GgmlType::F32, GB / 10),
        ];
        let rates = [(GgmlType::Q4K, 20.0), (GgmlType::Q8_0, 10.0)];
        let s = compute_seconds(&bytes, &rates, 50.0);
        assert!((s - (0.2 + 0.2 + 0.002)).abs() < 1e-12, "{s}");
        assert_eq!(compute_seconds(&[], &rates, 50.0), 0.0);
    }
}
