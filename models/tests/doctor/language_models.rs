//! Language models under the doctor: a bigram model and a tiny GPT pass as `LanguageModel`
//! tasks; unshifted targets fail data alignment; a detached GPT block is named parameter by
//! parameter.

use models::doctor::{diagnose, DoctorConfig, DATA_ALIGNMENT, GRADIENT_FLOW, PARAMETERS_UPDATE};
use models::trainer::LanguageModel;
use nn::Module;

use crate::fixtures::{
    adam, assert_all_pass, bigram, bigram_loss, failed_names, gpt_loss,
    gpt_loss_with_block_1_detached, lm_batcher, tiny_gpt, UnshiftedBigram,
};

/// A bigram language model on shifted token windows (a `LanguageModel` task) passes all seven checks.
#[test]
fn healthy_language_model_passes_every_check() {
    let report = diagnose(
        || {
            Ok(LanguageModel::new(
                bigram(12, 8),
                lm_batcher(1),
                bigram_loss,
            ))
        },
        adam(1e-2),
        &DoctorConfig::default(),
    )
    .unwrap();
    println!("{}", report.table());
    assert_all_pass(&report);
    assert!(report
        .check(DATA_ALIGNMENT)
        .unwrap()
        .detail
        .contains("every target is the next input"));
}

/// Targets equal to the inputs (not shifted) fail data alignment, and only that check.
#[test]
fn unshifted_language_model_targets_fail_data_alignment() {
    let build = || {
        Ok(UnshiftedBigram {
            model: bigram(12, 8),
            batcher: lm_batcher(1),
            current: None,
        })
    };
    let report = diagnose(
        build,
        adam(1e-2),
        &DoctorConfig {
            lr_range: None,
            ..Default::default()
        },
    )
    .unwrap();
    println!("{}", report.table());
    let check = report.check(DATA_ALIGNMENT).unwrap();
    assert!(!check.passed);
    assert!(
        check.detail.contains("the targets are not shifted"),
        "{}",
        check.detail
    );
    // 16 batches of 8 windows, each with 15 checkable positions; the cycle makes most of them
    // wrong.
    assert!(
        check.detail.contains("of 1920 positions"),
        "{}",
        check.detail
    );
    assert_eq!(
        failed_names(&report),
        vec![DATA_ALIGNMENT],
        "{}",
        report.table()
    );
    assert!(report.suggested_lr.is_none());
}

/// A tiny GPT trained as a `LanguageModel` task passes all seven checks.
#[test]
fn healthy_gpt_passes_every_check() {
    let report = diagnose(
        || Ok(LanguageModel::new(tiny_gpt(2), lm_batcher(1), gpt_loss)),
        adam(1e-2),
        &DoctorConfig::default(),
    )
    .unwrap();
    println!("{}", report.table());
    assert_all_pass(&report);
    assert!(report
        .check(GRADIENT_FLOW)
        .unwrap()
        .detail
        .contains("all 29 parameters"));
}

/// A GPT whose block 1 is detached from the residual stream fails gradient flow naming exactly that block's twelve parameters.
#[test]
fn gpt_with_a_detached_block_fails_by_name() {
    let report = diagnose(
        || {
            Ok(LanguageModel::new(
                tiny_gpt(2),
                lm_batcher(1),
                gpt_loss_with_block_1_detached,
            ))
        },
        adam(1e-2),
        &DoctorConfig {
            lr_range: None,
            ..Default::default()
        },
    )
    .unwrap();
    println!("{}", report.table());
    assert!(!report.all_passed());
    let flow = report.check(GRADIENT_FLOW).unwrap();
    assert!(!flow.passed);
    let block1: Vec<String> = Module::named_parameters(&tiny_gpt(2))
        .into_iter()
        .map(|(n, _)| n)
        .filter(|n| n.starts_with("transformer.h.1."))
        .collect();
    assert_eq!(block1.len(), 12);
    // Exactly block 1's parameters, by their nanoGPT names.
    assert_eq!(flow.failing, block1, "{}", flow.detail);
    assert!(
        flow.detail.contains("12 of 29 parameters"),
        "{}",
        flow.detail
    );
    assert!(flow
        .detail
        .contains("transformer.h.1.attn.c_attn.weight (no gradient)"));
    let update = report.check(PARAMETERS_UPDATE).unwrap();
    assert_eq!(update.failing, block1, "{}", update.detail);
    assert_eq!(
        failed_names(&report)[..2],
        [GRADIENT_FLOW, PARAMETERS_UPDATE]
    );
}
