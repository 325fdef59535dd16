//! The profiler's grader: parameter counts, FLOPs and activation bytes of known stacks equal
//! hand-computed values, times are measured and positive, the table renders, and the model is
//! left as it was found.

use models::cnn::{Cnn, CnnConfig, CnnLayer};
use models::gpt::{Gelu, Gpt, GptConfig};
use models::mlp::{Activation, Mlp, MlpConfig};
use models::profiler::{
    profile, profile_cnn, profile_gpt, profile_mlp, profile_sequential, FlopRule, ProfileConfig,
    ProfileLayer,
};
use nn::activation::ReLU;
use nn::conv::{Conv2d, Conv2dConfig};
use nn::flatten::Flatten;
use nn::linear::Linear;
use nn::pool::MaxPool2d;
use nn::sequential::Sequential;
use nn::transformer::{TransformerBlock, TransformerConfig};
use nn::Module;
use tensor::{Tensor, TensorRng};

const F32: usize = 4;

fn config() -> ProfileConfig {
    ProfileConfig {
        warmup: 1,
        repeats: 3,
    }
}

/// Parameters, FLOPs, activation bytes and shapes of a Sequential MLP equal hand-computed values; times are measured.
#[test]
fn mlp_counts_match_hand_computed_values() {
    let mut rng = TensorRng::new(0);
    let model = Sequential::new()
        .add(Linear::new(784, 128, true, &mut rng))
        .add(ReLU)
        .add(Linear::new(128, 10, true, &mut rng));
    let x = rng.normal(&[32, 784], 0.0, 1.0).unwrap();
    let p = profile_sequential(&model, &x, &config()).unwrap();
    println!("{}", p.table());
    assert_eq!(p.layers.len(), 3);

    let names: Vec<&str> = p.layers.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, ["0", "1", "2"]);
    let kinds: Vec<&str> = p.layers.iter().map(|l| l.kind.as_str()).collect();
    assert_eq!(kinds, ["Linear 784->128", "elementwise", "Linear 128->10"]);

    // Parameters: in * out + out.
    let params: Vec<usize> = p.layers.iter().map(|l| l.params).collect();
    assert_eq!(params, [784 * 128 + 128, 0, 128 * 10 + 10]);
    assert_eq!(p.params(), 101_770);
    assert_eq!(p.params(), model.num_parameters());

    // FLOPs: 2 * rows * in * out for each Linear; ReLU is not counted.
    let flops: Vec<u64> = p.layers.iter().map(|l| l.flops).collect();
    assert_eq!(flops, [6_422_528, 0, 81_920]);
    assert_eq!(p.flops(), 2 * 32 * (784 * 128 + 128 * 10));

    // Activations: a Linear keeps its matmul output and its bias sum (the transposed weight is a
    // view), ReLU its output.
    let act: Vec<usize> = p.layers.iter().map(|l| l.activation_bytes).collect();
    assert_eq!(act, [2 * 32 * 128 * F32, 32 * 128 * F32, 2 * 32 * 10 * F32]);

    // Shapes flow layer to layer.
    assert_eq!(p.layers[0].input_shape, [32, 784]);
    assert_eq!(p.layers[1].output_shape, [32, 128]);
    assert_eq!(p.layers[2].output_shape, [32, 10]);

    // Times are measured: positive forward everywhere, backward wherever a gradient flows.
    for l in &p.layers {
        assert!(l.forward.as_nanos() > 0, "{}", l.name);
        assert!(l.backward.is_some_and(|b| b.as_nanos() > 0), "{}", l.name);
    }
    assert!(p.forward_time() > std::time::Duration::ZERO);
    assert!(p.backward_time() > std::time::Duration::ZERO);
}

/// Shapes, kinds, parameters, FLOPs and activation bytes of a conv stack equal hand-computed values.
#[test]
fn conv_stack_counts_match_hand_computed_values() {
    let mut rng = TensorRng::new(1);
    let model = Sequential::new()
        .add(Conv2d::new(Conv2dConfig::new(1, 6, 5), &mut rng).unwrap())
        .add(ReLU)
        .add(MaxPool2d::new(2))
        .add(Conv2d::new(Conv2dConfig::new(6, 16, 3).padding(1).stride(2), &mut rng).unwrap())
        .add(Flatten::new())
        .add(Linear::new(16 * 6 * 6, 10, true, &mut rng));
    let x = rng.normal(&[2, 1, 28, 28], 0.0, 1.0).unwrap();
    let p = profile_sequential(&model, &x, &config()).unwrap();
    println!("{}", p.table());

    let shapes: Vec<Vec<usize>> = p.layers.iter().map(|l| l.output_shape.clone()).collect();
    assert_eq!(
        shapes,
        [
            vec![2, 6, 24, 24],
            vec![2, 6, 24, 24],
            vec![2, 6, 12, 12],
            vec![2, 16, 6, 6],
            vec![2, 576],
            vec![2, 10]
        ]
    );
    let kinds: Vec<&str> = p.layers.iter().map(|l| l.kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "Conv2d 1->6 5x5",
            "elementwise",
            "pool",
            "Conv2d 6->16 3x3",
            "reshape",
            "Linear 576->10"
        ]
    );

    let params: Vec<usize> = p.layers.iter().map(|l| l.params).collect();
    assert_eq!(
        params,
        [6 * 25 + 6, 0, 0, 16 * 6 * 9 + 16, 0, 576 * 10 + 10]
    );

    // Conv: 2 * N * OH * OW * O * C * KH * KW.
    let flops: Vec<u64> = p.layers.iter().map(|l| l.flops).collect();
    assert_eq!(
        flops,
        [
            2 * 2 * 24 * 24 * 6 * 25,
            0,
            0,
            2 * 2 * 6 * 6 * 16 * 6 * 9,
            0,
            2 * 2 * 576 * 10
        ]
    );

    // Conv: its output plus the saved im2col columns (N, C*KH*KW, OH*OW); max-pool: its output
    // plus one u32 argmax per output; Flatten: a view, nothing.
    let act: Vec<usize> = p.layers.iter().map(|l| l.activation_bytes).collect();
    assert_eq!(
        act,
        [
            (2 * 6 * 24 * 24 + 2 * 25 * 24 * 24) * F32,
            2 * 6 * 24 * 24 * F32,
            2 * 6 * 12 * 12 * (F32 + 4),
            (2 * 16 * 6 * 6 + 2 * 6 * 9 * 6 * 6) * F32,
            0,
            2 * 2 * 10 * F32
        ]
    );
    for l in &p.layers {
        assert!(l.forward.as_nanos() > 0, "{}", l.name);
    }
    // The first layer's input is data, but the conv has parameters: its backward is timed.
    assert!(p.layers[0].backward.is_some());
}

/// A transformer block's FLOPs count the token-wise projections and the two attention matmuls.
#[test]
fn transformer_block_flops_count_projections_and_attention() {
    let (b, t, c) = (2, 16, 32);
    let block = TransformerBlock::new(&TransformerConfig {
        n_embd: c,
        n_head: 4,
        dropout: 0.0,
        bias: true,
        seed: 3,
    })
    .unwrap();
    let x = TensorRng::new(4).normal(&[b, t, c], 0.0, 1.0).unwrap();
    let layers = [ProfileLayer::new("h.0", &block)
        .kind("TransformerBlock")
        .flops(FlopRule::Transformer)];
    let p = profile(&layers, &x, &config()).unwrap();
    println!("{}", p.table());
    let l = &p.layers[0];
    // 12 C^2 weights (qkv 3C^2, proj C^2, fc 4C^2, proj 4C^2) and 13 C biases/norm parameters.
    assert_eq!(l.params, 12 * c * c + 13 * c);
    // Every weight on every token, plus Q K^T and A V over the T x T square.
    assert_eq!(l.flops, (2 * b * t * 12 * c * c + 4 * b * t * t * c) as u64);
    assert_eq!(l.kind, "TransformerBlock");
    assert_eq!(l.output_shape, [b, t, c]);
    assert!(l.activation_bytes > 0);
    assert!(l.backward.is_some_and(|d| d.as_nanos() > 0));
}

/// Profiling restores parameter gradients and reports bad input as an error.
#[test]
fn profiling_leaves_gradients_and_reports_errors() {
    let mut rng = TensorRng::new(5);
    let model = Sequential::new().add(Linear::new(4, 3, true, &mut rng));
    let w = model.named_parameters()[0].1.clone();
    w.set_grad(Some(Tensor::full(&[3, 4], 7.0))).unwrap();
    let x = rng.normal(&[5, 4], 0.0, 1.0).unwrap();
    profile_sequential(&model, &x, &config()).unwrap();
    assert_eq!(w.grad().unwrap().to_vec(), vec![7.0; 12]);
    // The bias had no gradient and still has none.
    assert!(model.named_parameters()[1].1.grad().is_none());

    // A wrong input is the layer's error, not a panic; gradients are restored all the same.
    let bad = Tensor::zeros(&[5, 6]);
    let e = profile_sequential(&model, &bad, &config()).unwrap_err();
    assert!(e.to_string().contains("in_features = 4"), "{e}");
    assert_eq!(w.grad().unwrap().to_vec(), vec![7.0; 12]);

    let e = profile_sequential(
        &model,
        &x,
        &ProfileConfig {
            warmup: 0,
            repeats: 0,
        },
    )
    .unwrap_err();
    assert!(e.to_string().contains("repeats must be at least 1"), "{e}");
}

/// The profile table has one row per layer and a total row.
#[test]
fn table_renders_every_layer_and_a_total() {
    let mut rng = TensorRng::new(6);
    let model = Sequential::new()
        .add(Linear::new(8, 16, true, &mut rng))
        .add(ReLU)
        .add(Linear::new(16, 2, true, &mut rng));
    let x = rng.normal(&[4, 8], 0.0, 1.0).unwrap();
    let p = profile_sequential(&model, &x, &config()).unwrap();
    let table = p.table();
    println!("{table}");
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines[0].starts_with("layer") && lines[0].contains("MFLOPs") && lines[0].contains("bwd us")
    );
    assert!(lines
        .iter()
        .any(|l| l.starts_with("0 ") && l.contains("Linear 8->16") && l.contains("[4, 16]")));
    assert!(lines
        .iter()
        .any(|l| l.starts_with("1 ") && l.contains("elementwise")));
    let total = lines.iter().find(|l| l.starts_with("total")).unwrap();
    assert!(
        total.contains(&(8 * 16 + 16 + 16 * 2 + 2).to_string()),
        "{total}"
    );
    assert!(table.contains("median of 3 runs"));
}

/// LeNet-5's profile has its layers by name and FLOPs and parameters equal to the hand-computed and the model's counts.
#[test]
fn lenet5_profile_matches_hand_computed_counts() {
    let cnn = Cnn::new(CnnConfig::lenet5()).unwrap();
    let n = 4u64;
    let x = TensorRng::new(7).normal(&[4, 1, 28, 28], 0.0, 1.0).unwrap();
    let p = profile_cnn(&cnn, &x, &config()).unwrap();
    println!("{}", p.table());
    let names: Vec<&str> = p.layers.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "features.0",
            "features.1",
            "features.2",
            "features.3",
            "features.4",
            "features.5",
            "flatten",
            "classifier.0",
            "act.0",
            "classifier.1",
            "act.1",
            "classifier.2"
        ]
    );
    assert_eq!(p.layers[0].kind, "Conv2d 1->6 5x5");
    assert_eq!(p.layers[1].kind, "ReLU");
    assert_eq!(p.layers[2].kind, "MaxPool2d");
    // LeNet-5: 156 + 2,416 + 48,120 + 10,164 + 850.
    assert_eq!(p.params(), 61_706);
    assert_eq!(p.params(), cnn.num_parameters());
    let flops: Vec<u64> = p
        .layers
        .iter()
        .map(|l| l.flops)
        .filter(|&f| f > 0)
        .collect();
    assert_eq!(
        flops,
        [
            2 * n * 28 * 28 * 6 * 25,      // conv 1->6, 5x5, padding 2
            2 * n * 10 * 10 * 16 * 6 * 25, // conv 6->16, 5x5
            2 * n * 400 * 120,
            2 * n * 120 * 84,
            2 * n * 84 * 10
        ]
    );
    assert_eq!(p.layers.last().unwrap().output_shape, [4, 10]);
    // Flat inputs are viewed as images, like the model does.
    let flat = x.reshape_to(&[4, 784]).unwrap();
    assert_eq!(
        profile_cnn(&cnn, &flat, &config()).unwrap().flops(),
        p.flops()
    );
}

/// Profiling a CNN with BatchNorm leaves its running statistics as they were.
#[test]
fn cnn_profile_with_batch_norm_leaves_the_running_statistics() {
    let cfg = CnnConfig {
        input_shape: [3, 8, 8],
        features: vec![
            CnnLayer::conv(4, 3, 1),
            CnnLayer::BatchNorm,
            CnnLayer::Act,
            CnnLayer::MaxPool(2),
        ],
        hidden: vec![],
        num_classes: 2,
        activation: Activation::ReLU,
        dropout: 0.0,
        seed: 1,
    };
    let cnn = Cnn::new(cfg).unwrap();
    let before: Vec<Vec<f32>> = cnn
        .named_buffers()
        .iter()
        .map(|(_, b)| b.value().to_vec())
        .collect();
    let x = TensorRng::new(8).normal(&[2, 3, 8, 8], 0.0, 1.0).unwrap();
    let p = profile_cnn(&cnn, &x, &config()).unwrap();
    println!("{}", p.table());
    assert_eq!(p.layers[1].kind, "BatchNorm2d");
    assert_eq!(p.layers[1].params, 8);
    assert_eq!(p.params(), cnn.num_parameters());
    let after: Vec<Vec<f32>> = cnn
        .named_buffers()
        .iter()
        .map(|(_, b)| b.value().to_vec())
        .collect();
    assert_eq!(before, after);
}

/// An Mlp's profile shows flatten, layers and activations in order, with the model's parameter count.
#[test]
fn mlp_profile_interleaves_activations() {
    let mlp = Mlp::new(MlpConfig::new(&[784, 128, 64, 10]).activation(Activation::GELU)).unwrap();
    let x = TensorRng::new(9).normal(&[8, 1, 28, 28], 0.0, 1.0).unwrap();
    let p = profile_mlp(&mlp, &x, &config()).unwrap();
    println!("{}", p.table());
    let names: Vec<&str> = p.layers.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(
        names,
        ["flatten", "layers.0", "act.0", "layers.1", "act.1", "layers.2"]
    );
    assert_eq!(p.layers[0].kind, "reshape");
    assert_eq!(p.layers[2].kind, "GELU");
    assert_eq!(p.params(), 784 * 128 + 128 + 128 * 64 + 64 + 64 * 10 + 10);
    assert_eq!(p.params(), mlp.num_parameters());
    assert_eq!(p.flops(), 2 * 8 * (784 * 128 + 128 * 64 + 64 * 10));
    // The flatten is a view (no activation memory) and has no gradient to compute.
    assert_eq!(p.layers[0].activation_bytes, 0);
    assert!(p.layers[0].backward.is_none());
}

/// A GPT's profile has embeddings, one row per block, ln_f and the head; a tied head is counted once; bad ids are errors.
#[test]
fn gpt_profile_per_block() {
    for tie_weights in [false, true] {
        let (v, c, l) = (12, 32, 2);
        let gpt = Gpt::new(
            GptConfig {
                vocab_size: v,
                block_size: 16,
                n_layer: l,
                n_head: 2,
                n_embd: c,
                dropout: 0.0,
                bias: true,
                tie_weights,
                gelu: Gelu::Exact,
            },
            1,
        )
        .unwrap();
        let (b, t) = (2, 16);
        let ids: Vec<usize> = (0..b * t).map(|i| i % v).collect();
        let p = profile_gpt(&gpt, &ids, b, t, &config()).unwrap();
        println!("{}", p.table());
        let names: Vec<&str> = p.layers.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["embeddings", "h.0", "h.1", "ln_f", "lm_head"]);
        // A tied head is counted once, in the embeddings.
        assert_eq!(p.params(), gpt.num_parameters(), "tied: {tie_weights}");
        assert_eq!(p.layers[4].params, if tie_weights { 0 } else { v * c });
        assert_eq!(p.layers[1].params, 12 * c * c + 13 * c);
        let block = (2 * b * t * 12 * c * c + 4 * b * t * t * c) as u64;
        assert_eq!(p.flops(), l as u64 * block + (2 * b * t * c * v) as u64);
        assert_eq!(p.layers[4].output_shape, [b, t, v]);
        for layer in &p.layers {
            assert!(
                layer.forward.as_nanos() > 0 && layer.backward.is_some(),
                "{}",
                layer.name
            );
        }
    }
    let gpt = Gpt::new(GptConfig::nanogpt_baby(12), 1).unwrap();
    let e = profile_gpt(&gpt, &[0; 130], 2, 65, &config()).unwrap_err();
    assert!(e.to_string().contains("exceeds block_size 64"), "{e}");
    let e = profile_gpt(&gpt, &[0, 12], 1, 2, &config()).unwrap_err();
    assert!(e.to_string().contains("id 12 at position 1"), "{e}");
}

/// The parameter names a layer list covers, `layer.param` (how the model names them).
fn layer_parameter_names(layers: &[ProfileLayer]) -> Vec<String> {
    let mut names: Vec<String> = layers
        .iter()
        .flat_map(|l| {
            l.module
                .named_parameters()
                .into_iter()
                .map(move |(p, _)| format!("{}.{p}", l.name))
        })
        .collect();
    names.sort();
    names
}

fn model_parameter_names(model: &dyn Module) -> Vec<String> {
    let mut names: Vec<String> = model
        .named_parameters()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    names.sort();
    names
}

/// Each model lists its own layers: together they hold exactly the model's parameters, under
/// the model's own names, and the profile's parameter and FLOP counts agree with the model.
#[test]
fn models_list_their_own_layers() {
    let mlp = Mlp::new(MlpConfig::new(&[12, 8, 4])).unwrap();
    let layers = mlp.profile_layers(2);
    assert_eq!(layer_parameter_names(&layers), model_parameter_names(&mlp));
    let x = TensorRng::new(3).normal(&[5, 12], 0.0, 1.0).unwrap();
    let p = profile(&layers, &x, &config()).unwrap();
    assert_eq!(p.params(), mlp.num_parameters());
    assert_eq!(p.flops(), 2 * 5 * (12 * 8 + 8 * 4));
    // The profiled stack computes what the model computes.
    let out = layers
        .iter()
        .fold(autograd::Variable::constant(x.clone()), |x, l| {
            l.module.forward(&x).unwrap()
        });
    let direct = mlp.forward(&autograd::Variable::constant(x)).unwrap();
    assert_eq!(out.value().to_vec(), direct.value().to_vec());

    let cnn = Cnn::new(CnnConfig {
        input_shape: [1, 6, 6],
        features: vec![
            CnnLayer::conv(2, 3, 1),
            CnnLayer::BatchNorm,
            CnnLayer::Act,
            CnnLayer::AvgPool(2),
        ],
        hidden: vec![5],
        num_classes: 3,
        activation: Activation::Tanh,
        dropout: 0.0,
        seed: 2,
    })
    .unwrap();
    let layers = cnn.profile_layers();
    assert_eq!(layer_parameter_names(&layers), model_parameter_names(&cnn));
    let kinds: Vec<Option<&str>> = layers.iter().map(|l| l.kind.as_deref()).collect();
    assert_eq!(
        kinds,
        [
            None,
            Some("BatchNorm2d"),
            Some("Tanh"),
            Some("AvgPool2d"),
            None,
            None,
            Some("Tanh"),
            None
        ]
    );
    let x = TensorRng::new(4).normal(&[2, 1, 6, 6], 0.0, 1.0).unwrap();
    let p = profile_cnn(&cnn, &x, &config()).unwrap();
    assert_eq!(p.params(), cnn.num_parameters());
    assert_eq!(
        p.flops(),
        2 * 2 * (6 * 6 * 2 * 9 + 2 * 3 * 3 * 5 + 5 * 3) as u64
    );

    for tie_weights in [false, true] {
        let gpt = Gpt::new(
            GptConfig {
                vocab_size: 10,
                block_size: 8,
                n_layer: 1,
                n_head: 2,
                n_embd: 16,
                dropout: 0.0,
                bias: false,
                tie_weights,
                gelu: Gelu::Exact,
            },
            3,
        )
        .unwrap();
        let ids = [1, 2, 3, 4, 5, 6];
        let layers = gpt.profile_layers(&ids, 2, 3).unwrap();
        // GPT names its parameters as nanoGPT does: compare the parameters themselves.
        let mut got: Vec<u64> = layers
            .iter()
            .flat_map(|l| l.module.parameters())
            .map(|p| p.id())
            .collect();
        got.sort();
        got.dedup();
        let mut want: Vec<u64> = gpt.parameters().iter().map(|p| p.id()).collect();
        want.sort();
        assert_eq!(got, want, "tied: {tie_weights}");
        assert!(gpt.profile_layers(&ids, 3, 3).is_err());
    }
}

/// The README's measured profiles: LeNet-5 on a batch of 64 MNIST-sized images and nanoGPT's
/// baby Shakespeare model on 12 windows of 64 characters. Run with
/// `cargo test -p models --release --test profiler systems -- --ignored --nocapture`.
#[test]
#[ignore]
fn systems_profiles() {
    let repeat = ProfileConfig {
        warmup: 2,
        repeats: 10,
    };
    let cnn = Cnn::new(CnnConfig::lenet5()).unwrap();
    let x = TensorRng::new(1)
        .normal(&[64, 1, 28, 28], 0.0, 1.0)
        .unwrap();
    let p = profile_cnn(&cnn, &x, &repeat).unwrap();
    println!("LeNet-5, batch 64\n{}", p.table());
    println!(
        "parameters {} KiB, activations {} KiB\n",
        p.params() * F32 / 1024,
        p.activation_bytes() / 1024
    );

    let gpt = Gpt::new(GptConfig::nanogpt_baby(65), 1).unwrap();
    let ids: Vec<usize> = (0..12 * 64).map(|i| (i * 7) % 65).collect();
    let p = profile_gpt(&gpt, &ids, 12, 64, &repeat).unwrap();
    println!("nanogpt-baby, 12 x 64 tokens\n{}", p.table());
    println!(
        "parameters {} KiB, activations {} KiB",
        p.params() * F32 / 1024,
        p.activation_bytes() / 1024
    );
}
