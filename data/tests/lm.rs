//! Grader for language-model windows: shifted targets, seeded random batches, a split that never
//! overlaps.

use data::lm::DEFAULT_VAL_FRACTION;
use data::{split_train_val, LmBatcher};

/// A language-model window's targets are its inputs shifted by one token, and a window running past
/// the end is an error.
#[test]
fn targets_are_inputs_shifted_by_one() {
    let tokens: Vec<usize> = vec![5, 3, 8, 1, 9, 2];
    let b = LmBatcher::new(tokens, 3, 2, 0).unwrap();
    let (x, y) = b.window(1).unwrap();
    assert_eq!(x, &[3, 8, 1]);
    assert_eq!(y, &[8, 1, 9]);
    assert!(
        b.window(3).is_err(),
        "a window of 3 at 3 would need token 6"
    );
    assert!(b.window(2).is_ok());
}

/// Random LM batches are valid windows (targets = inputs + 1), the same seed gives the same
/// batches, and every start position is eventually drawn.
#[test]
fn random_batches_are_valid_seeded_and_cover_all_starts() {
    // Token value = position, so a window's start is its first input and targets are inputs + 1.
    let n = 40;
    let tokens: Vec<usize> = (0..n).collect();
    let (t, bsz) = (8, 4);
    let mut a = LmBatcher::new(tokens.clone(), t, bsz, 7).unwrap();
    let mut b = LmBatcher::new(tokens.clone(), t, bsz, 7).unwrap();
    let mut c = LmBatcher::new(tokens, t, bsz, 8).unwrap();
    let mut starts = std::collections::HashSet::new();
    let mut differs = false;
    for _ in 0..200 {
        let x = a.sample();
        assert_eq!(x, b.sample(), "same seed, same batches");
        differs |= x != c.sample();
        assert_eq!((x.batch_size, x.block_size), (bsz, t));
        assert_eq!(x.inputs.len(), bsz * t);
        for row in 0..bsz {
            let inp = &x.inputs[row * t..(row + 1) * t];
            let tgt = &x.targets[row * t..(row + 1) * t];
            for k in 0..t {
                assert_eq!(inp[k], inp[0] + k, "windows are contiguous");
                assert_eq!(tgt[k], inp[k] + 1, "targets are the next tokens");
            }
            assert!(inp[0] + t < n, "the last target stays inside the stream");
            starts.insert(inp[0]);
        }
    }
    assert!(differs, "another seed, other batches");
    assert_eq!(starts.len(), n - t, "every start 0..=len-T-1 is drawn");
    let x = a.sample();
    let tensor = x.inputs_tensor().unwrap();
    assert_eq!(tensor.shape(), &[bsz, t]);
    assert_eq!(tensor.to_vec()[0], x.inputs[0] as f32);
}

/// The train/validation split cuts the stream at 90%, and no training window ever reads a
/// validation token.
#[test]
fn train_and_val_never_overlap() {
    let tokens: Vec<usize> = (0..1000).collect();
    let (train, val) = split_train_val(&tokens, DEFAULT_VAL_FRACTION).unwrap();
    assert_eq!(train.len(), 900);
    assert_eq!(val.len(), 100);
    assert_eq!(train, (0..900).collect::<Vec<_>>());
    assert_eq!(val, (900..1000).collect::<Vec<_>>());
    let mut tr = LmBatcher::new(train, 16, 8, 1).unwrap();
    let mut va = LmBatcher::new(val, 16, 8, 1).unwrap();
    for _ in 0..100 {
        let b = tr.sample();
        assert!(b.inputs.iter().chain(&b.targets).all(|&t| t < 900));
        let b = va.sample();
        assert!(b.inputs.iter().chain(&b.targets).all(|&t| t >= 900));
    }
    assert!(split_train_val(&tokens, 1.0).is_err());
    assert_eq!(split_train_val(&tokens, 0.0).unwrap().1.len(), 0);
}

/// Sequential evaluation windows tile the stream without overlap, batched in order with a short
/// last batch.
#[test]
fn sequential_windows_tile_the_stream() {
    let tokens: Vec<usize> = (0..23).collect();
    let b = LmBatcher::new(tokens, 5, 3, 0).unwrap();
    let batches = b.sequential();
    // (23 - 1) / 5 = 4 windows: starts 0, 5, 10, 15, in batches of 3 and 1.
    assert_eq!(batches.len(), 2);
    assert_eq!(batches[0].batch_size, 3);
    assert_eq!(batches[1].batch_size, 1);
    assert_eq!(&batches[0].inputs[5..10], &[5, 6, 7, 8, 9]);
    assert_eq!(batches[1].inputs, vec![15, 16, 17, 18, 19]);
    assert_eq!(batches[1].targets, vec![16, 17, 18, 19, 20]);
}

/// A stream shorter than one window plus its target, or a zero block or batch size, is an error
/// giving the sizes.
#[test]
fn too_short_streams_are_errors() {
    let err = LmBatcher::new(vec![1, 2, 3], 3, 1, 0)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("needs 4 tokens") && err.contains("has 3"),
        "{err}"
    );
    assert!(LmBatcher::new(vec![1, 2, 3], 0, 1, 0).is_err());
    assert!(LmBatcher::new(vec![1, 2, 3], 2, 0, 0).is_err());
    assert!(LmBatcher::new(vec![1, 2, 3], 2, 1, 0).is_ok());
}
