//! feishu end to end: placeholder until the adapter lands (issue 8).
