//! Rules of the hub that more than one surface applies (the API, the Hugging Face routes, the web
//! pages, the jobs), each written once here. Nothing in this module knows of HTTP.

pub mod scan;
