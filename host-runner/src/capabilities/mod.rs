//! Host capabilities answered by imagegate.
