//! Grader tests: every schedule matches its closed form at hand-picked steps, refuses bad
//! settings, and the plateau schedule resumes from its saved state.

use optim::schedule::{
    Constant, CosineAnnealing, ExponentialLr, LrSchedule, OneCycle, OneCycleConfig, PlateauConfig,
    PlateauState, ReduceLrOnPlateau, StepLr, WarmupCosine,
};

fn close(got: f64, want: f64) -> bool {
    (got - want).abs() <= 1e-12 * want.abs().max(1e-12)
}

fn check(s: &dyn LrSchedule, cases: &[(u64, f64)]) {
    for &(step, want) in cases {
        let got = s.lr_at(step);
        assert!(
            close(got, want),
            "{}: step {step}: {got} vs {want}",
            s.name()
        );
    }
}

/// `Constant`, `StepLr::lr_at`, `ExponentialLr::lr_at` at chosen steps.
#[test]
fn simple_closed_forms() {
    check(
        &Constant::new(3e-4).unwrap(),
        &[(0, 3e-4), (1_000_000, 3e-4)],
    );
    // 0.1 * 0.5^floor(t / 3)
    check(
        &StepLr::new(0.1, 3, 0.5).unwrap(),
        &[(0, 0.1), (2, 0.1), (3, 0.05), (8, 0.025), (9, 0.0125)],
    );
    // 0.2 * 0.9^t
    check(
        &ExponentialLr::new(0.2, 0.9).unwrap(),
        &[(0, 0.2), (1, 0.18), (2, 0.162), (10, 0.2 * 0.9f64.powi(10))],
    );
}

/// `CosineAnnealing::lr_at`: base at 0, halfway at t_max / 2, eta_min at t_max, back up past it.
#[test]
fn cosine_closed_form() {
    let s = CosineAnnealing::new(0.1, 100, 0.01).unwrap();
    check(
        &s,
        &[(0, 0.1), (50, 0.055), (100, 0.01), (150, 0.055), (200, 0.1)],
    );
    // A quarter of the way: 0.01 + 0.09 * (1 + cos(pi / 4)) / 2.
    check(
        &s,
        &[(
            25,
            0.01 + 0.09 * (1.0 + std::f64::consts::FRAC_1_SQRT_2) / 2.0,
        )],
    );
}

/// `WarmupCosine::lr_at`: nanoGPT's warmup, half-way point, end of decay, floor.
#[test]
fn warmup_cosine_closed_form() {
    let s = WarmupCosine::new(6e-4, 2000, 600_000, 6e-5).unwrap();
    check(
        &s,
        &[
            (0, 6e-4 / 2001.0),
            (999, 6e-4 * 1000.0 / 2001.0),
            (1999, 6e-4 * 2000.0 / 2001.0),
            (2000, 6e-4),
            (301_000, 6e-5 + 0.5 * (6e-4 - 6e-5)),
            (600_000, 6e-5),
            (10_000_000, 6e-5),
        ],
    );
    // Monotone: up during warmup, down after.
    let lrs: Vec<f64> = (0..600_000).step_by(1000).map(|t| s.lr_at(t)).collect();
    assert!(lrs[..2].windows(2).all(|w| w[0] < w[1]));
    assert!(lrs[2..].windows(2).all(|w| w[0] >= w[1]));
}

/// `OneCycle::lr_at`: starts at max/25, peaks at pct_start, ends at max/25/1e4.
#[test]
fn one_cycle_closed_form() {
    let s = OneCycle::new(OneCycleConfig::new(1.0, 101)).unwrap();
    // Phase 1 ends at 0.3 * 101 - 1 = 29.3: its middle is 14.65, not a step; step 29 is just short.
    check(&s, &[(0, 0.04), (100, 1.0 / 25.0 / 1e4)]);
    let peak = (0..=101).map(|t| s.lr_at(t)).fold(0.0, f64::max);
    assert!(peak > 0.999 && peak <= 1.0, "peak {peak}");
    // Exactly on the phase formula at step 29: pct = 29 / 29.3 of the way from 0.04 to 1.
    let pct = 29.0 / (0.3 * 101.0 - 1.0);
    check(
        &s,
        &[(
            29,
            1.0 + (0.04 - 1.0) / 2.0 * ((std::f64::consts::PI * pct).cos() + 1.0),
        )],
    );
    // Past the cycle (PyTorch raises): the final rate.
    assert!(close(s.lr_at(1000), 4e-6));
    // 10 steps, pct 0.5: phase 1 ends at step 4, phase 2 at 9; halfway down is step 6.5.
    let s = OneCycle::new(OneCycleConfig {
        pct_start: 0.5,
        ..OneCycleConfig::new(1.0, 10)
    })
    .unwrap();
    check(&s, &[(0, 0.04), (4, 1.0), (9, 4e-6)]);
    let mid = 4e-6 + (1.0 - 4e-6) / 2.0 * ((std::f64::consts::PI * 0.4).cos() + 1.0);
    check(&s, &[(6, mid)]);
}

/// Bad settings are errors that say which knob and why.
#[test]
fn bad_settings_are_refused() {
    let msg = |r: Result<(), optim::OptimError>| r.unwrap_err().to_string();
    assert!(msg(StepLr::new(0.1, 0, 0.5).map(drop)).contains("StepLr: step_size must be > 0"));
    assert!(msg(ExponentialLr::new(0.1, 0.0).map(drop)).contains("gamma must be finite and > 0"));
    assert!(
        msg(CosineAnnealing::new(f64::NAN, 10, 0.0).map(drop)).contains("base_lr must be finite")
    );
    assert!(msg(WarmupCosine::new(1e-3, 100, 100, 1e-4).map(drop))
        .contains("warmup_iters (100) must be < lr_decay_iters (100)"));
    assert!(msg(WarmupCosine::new(1e-3, 10, 100, 1e-2).map(drop))
        .contains("min_lr (0.01) must be <= max_lr"));
    assert!(msg(OneCycle::new(OneCycleConfig::new(0.1, 3)).map(drop))
        .contains("phase 0 would be empty"));
    assert!(msg(OneCycle::new(OneCycleConfig {
        pct_start: 1.5,
        ..OneCycleConfig::new(0.1, 100)
    })
    .map(drop))
    .contains("pct_start"));
    let bad = PlateauConfig {
        factor: 1.0,
        ..Default::default()
    };
    assert!(msg(ReduceLrOnPlateau::new(0.1, bad).map(drop)).contains("factor must be in (0, 1)"));
}

/// `ReduceLrOnPlateau::observe`: cut after patience, cooldown, floor; NaN never improves; the
/// state round-trips through JSON and resumes identically.
#[test]
fn plateau_cuts_and_resumes() {
    let config = PlateauConfig {
        factor: 0.5,
        patience: 1,
        cooldown: 1,
        min_lr: 0.02,
        ..Default::default()
    };
    let mut s = ReduceLrOnPlateau::new(0.1, config).unwrap();
    // 1.0 improves (best inf); 1.0, 1.0: two bad > patience 1 -> cut to 0.05, cooldown 1.
    assert_eq!(s.observe(1.0), 0.1);
    assert_eq!(s.observe(1.0), 0.1);
    assert_eq!(s.observe(1.0), 0.05);
    // Cooldown swallows one bad observation, then two more bad ones cut again.
    assert_eq!(s.observe(f64::NAN), 0.05);
    assert_eq!(s.observe(f64::NAN), 0.05);
    let saved = s.state();
    let json = saved.to_json();
    assert_eq!(s.observe(2.0), 0.025);
    // Floor at min_lr.
    for _ in 0..10 {
        s.observe(2.0);
    }
    assert_eq!(s.lr(), 0.02);

    let mut resumed = ReduceLrOnPlateau::new(0.1, config).unwrap();
    let state = PlateauState::from_json(&json).unwrap();
    assert_eq!(state, saved);
    assert_eq!(state.best, 1.0);
    resumed.load_state(state);
    assert_eq!(resumed.observe(2.0), 0.025);
    // An improvement resets the count.
    assert!(resumed.would_improve(0.5));
    assert_eq!(resumed.observe(0.5), 0.025);
    assert_eq!(resumed.state().num_bad_epochs, 0);

    let fresh = ReduceLrOnPlateau::new(0.1, PlateauConfig::default()).unwrap();
    let back = PlateauState::from_json(&fresh.state().to_json()).unwrap();
    assert_eq!(back.best, f64::INFINITY);
    assert!(PlateauState::from_json("{}")
        .unwrap_err()
        .to_string()
        .contains("'lr'"));
}
