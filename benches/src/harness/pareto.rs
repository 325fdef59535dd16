//! The Pareto frontier: the models no other model beats on both counts at once.
//!
//! Optimizing trades accuracy for speed or size, so "the best model" depends on what you can
//! afford. A model is *dominated* when another is at least as accurate and at most as costly,
//! and strictly better on one of the two; the models left are the frontier, and every choice
//! worth making is on it. Two identical models do not dominate each other (both stay), and a
//! model with a non-finite accuracy or cost is never on the frontier.

/// For each `(accuracy, cost)` pair (accuracy: higher is better; cost such as latency or
/// bytes: lower is better), whether it is on the Pareto frontier.
pub fn pareto_front(points: &[(f64, f64)]) -> Vec<bool> {
    // HINT: point i is on the frontier when it is finite and no j has accuracy_j >= accuracy_i
    // HINT: and cost_j <= cost_i with at least one of the two strict.
    // BEGIN SOLUTION
    let finite = |&(a, c): &(f64, f64)| a.is_finite() && c.is_finite();
    points
        .iter()
        .map(|p| {
            finite(p)
                && !points
                    .iter()
                    .filter(|q| finite(q))
                    .any(|q| q.0 >= p.0 && q.1 <= p.1 && (q.0 > p.0 || q.1 < p.1))
        })
        .collect()
    // END SOLUTION
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dominated_points_are_dropped() {
        // (accuracy, latency): b is faster but less accurate than a (both stay); c is slower
        // and less accurate than a (dominated).
        let pts = [(0.95, 10.0), (0.90, 2.0), (0.80, 12.0)];
        assert_eq!(pareto_front(&pts), vec![true, true, false]);
    }

    #[test]
    fn non_finite_points_are_never_on_the_frontier() {
        let pts = [(f64::NAN, 1.0), (0.5, 2.0), (0.9, f64::INFINITY)];
        assert_eq!(pareto_front(&pts), vec![false, true, false]);
    }
}
