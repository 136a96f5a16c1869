//! Content-addressed image layers and images on disk.
//!
//! (Being written: import of a directory, a tar, a gzip/zstd tar or a stream; OCI whiteouts turned into
//! overlay whiteouts; staging and atomic commit; images as ordered layer lists plus a config.)
