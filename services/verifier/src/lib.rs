//! Sample-inference verification of ONNX models: load a model with ONNX Runtime, describe it,
//! run it on generated inputs and on the publisher's reference vectors, compare with
//! tolerances, check determinism, time it; each model in a limited child process.

pub mod compare;
pub mod inputs;
pub mod model_info;
pub mod proto;
pub mod report;
pub mod runtime;
pub mod sandbox;
pub mod settings;
pub mod shapes;
pub mod tensor;
pub mod vectors;
pub mod verify;

pub use report::{ModelReport, Status};
pub use runtime::Ep;
pub use sandbox::{ChildCommand, ChildConfig, Limits, ModelRequest, Verifier};
pub use settings::VerifySettings;
