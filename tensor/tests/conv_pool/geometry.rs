//! The output-size formula of a convolution or pooling window, and the geometries it refuses.

use crate::helpers::geom;
use tensor::conv::Conv2dGeometry;

/// The convolution output size equals floor((H + 2p - d(k-1) - 1) / s) + 1 on a table of cases
/// worked out by hand (LeNet, ResNet stem, dilation, stride).
#[test]
fn output_size_formula() {
    // (H, k, s, p, d) -> floor((H + 2p - d(k-1) - 1) / s) + 1
    let cases = [
        (28, 5, 1, 0, 1, 24),
        (28, 5, 1, 2, 1, 28),
        (7, 3, 2, 1, 1, 4),
        (8, 3, 2, 1, 1, 4),
        (10, 3, 1, 0, 2, 6),
        (10, 3, 2, 1, 2, 4),
        (5, 3, 1, 1, 3, 1),
        (5, 5, 1, 0, 1, 1),
        (4, 2, 3, 0, 1, 1),
        (32, 3, 2, 1, 1, 16),
        (224, 7, 2, 3, 1, 112),
        (0, 1, 1, 1, 1, 2),
    ];
    for (h, k, s, p, d, want) in cases {
        let g = geom((k, 1), (s, 1), (p, 0), (d, 1));
        assert_eq!(
            g.output_size(h, 3).unwrap(),
            (want, 3),
            "H={h} k={k} s={s} p={p} d={d}"
        );
        // the same along the width
        let g = geom((1, k), (1, s), (0, p), (1, d));
        assert_eq!(
            g.output_size(3, h).unwrap(),
            (3, want),
            "W={h} k={k} s={s} p={p} d={d}"
        );
    }
    assert_eq!(
        Conv2dGeometry::with_kernel((3, 2)),
        geom((3, 2), (1, 1), (0, 0), (1, 1))
    );
    assert_eq!(Conv2dGeometry::with_kernel((3, 2)).kernel_numel(), 6);
}

/// A kernel that spans more than the padded input, or a zero stride/dilation, is an error saying
/// why instead of a wrong or negative size.
#[test]
fn output_size_errors() {
    // dilated kernel spans 7 > 5
    let e = geom((3, 3), (1, 1), (0, 0), (3, 3))
        .output_size(5, 5)
        .unwrap_err();
    assert!(e.to_string().contains("spans 7"), "{e}");
    assert!(geom((6, 1), (1, 1), (0, 0), (1, 1))
        .output_size(5, 5)
        .is_err());
    assert!(geom((1, 6), (1, 1), (0, 0), (1, 1))
        .output_size(5, 5)
        .is_err());
    assert!(geom((3, 3), (0, 1), (0, 0), (1, 1))
        .output_size(5, 5)
        .is_err());
    assert!(geom((3, 3), (1, 0), (0, 0), (1, 1))
        .output_size(5, 5)
        .is_err());
    assert!(geom((3, 3), (1, 1), (0, 0), (0, 1))
        .output_size(5, 5)
        .is_err());
    assert!(geom((0, 3), (1, 1), (0, 0), (1, 1))
        .output_size(5, 5)
        .is_err());
}
