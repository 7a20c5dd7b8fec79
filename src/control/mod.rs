//! The control plane, off the shard cores: metrics HTTP. (The shell helper implements this.)
