//! The commands, side by side: each is a thin layer over the library's stages.

pub mod convert;
pub mod decode;
pub mod demo;
pub mod flow;
pub mod homer;
pub mod listen;
pub mod replay;
pub mod serve;
