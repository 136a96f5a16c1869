//! A layer source named on the command line (`mountkit layer import ARG`).

use std::path::Path;

use mountkit_layer_store::LayerSource;

/// What `mountkit layer import ARG` imports: `-` is standard input (a tar, plain or compressed); a
/// directory is archived; anything else is taken for a tar file (plain, gzip or zstd, detected by its
/// content), so that a missing file is reported as such by the import.
///
/// ```
/// use mountkit::layer_store::LayerSource;
/// assert!(matches!(mountkit::layer_source_from_arg("-"), LayerSource::Reader(_)));
/// assert!(matches!(mountkit::layer_source_from_arg("/"), LayerSource::Dir(_)));
/// assert!(matches!(mountkit::layer_source_from_arg("rootfs.tar.gz"), LayerSource::Tar(_)));
/// ```
pub fn layer_source_from_arg(arg: &str) -> LayerSource {
    if arg == "-" {
        LayerSource::Reader(Box::new(std::io::stdin()))
    } else if Path::new(arg).is_dir() {
        LayerSource::Dir(arg.into())
    } else {
        LayerSource::Tar(arg.into())
    }
}
