//! Helpers shared by optim's test binaries (`mod common;`).

use autograd::Variable;
use optim::{RmsProp, RmsPropConfig};

/// RMSprop with every option on (momentum 0.9, centered), the variant with the most state.
pub fn centered_momentum_rmsprop(params: Vec<(String, Variable)>) -> RmsProp {
    RmsProp::new(
        params,
        RmsPropConfig {
            momentum: 0.9,
            centered: true,
            ..Default::default()
        },
    )
    .unwrap()
}
