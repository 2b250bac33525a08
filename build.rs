//! With the `service` feature, generates the ttrpc service code from
//! `proto/kata_volume.proto` into `OUT_DIR` (pure Rust: no `protoc` needed).
//! `src/service/proto.rs` includes it through `OUT_DIR/modules.rs`. Without the feature (the
//! lean library an agent embeds) there is nothing to generate.

fn main() -> std::io::Result<()> {
    println!("cargo:rerun-if-changed=proto/kata_volume.proto");
    #[cfg(feature = "service")]
    service::generate()?;
    Ok(())
}

#[cfg(feature = "service")]
mod service {
    use std::path::PathBuf;

    use ttrpc_codegen::{Codegen, Customize, ProtobufCustomize};

    pub fn generate() -> std::io::Result<()> {
        let out = PathBuf::from(std::env::var_os("OUT_DIR").ok_or_else(|| {
            std::io::Error::other("OUT_DIR is not set (build.rs runs under cargo)")
        })?);
        Codegen::new()
            .out_dir(&out)
            .input("proto/kata_volume.proto")
            .include("proto")
            .rust_protobuf()
            .customize(Customize {
                async_all: true,
                ..Default::default()
            })
            .rust_protobuf_customize(ProtobufCustomize::default().gen_mod_rs(false))
            .run()?;
        // Our own module list: the generated `mod.rs` starts with an inner attribute, which
        // `include!` does not accept.
        std::fs::write(
            out.join("modules.rs"),
            "pub mod kata_volume;\npub mod kata_volume_ttrpc;\n",
        )
    }
}
