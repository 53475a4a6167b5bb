//! The app's stylesheet and script, compiled into the binary: nothing is fetched from
//! anywhere else (the Content-Security-Policy would refuse it anyway).

use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

const CSS: &str = include_str!("../assets/app.css");
const JS: &str = include_str!("../assets/app.js");

pub async fn serve(Path(file): Path<String>) -> Response {
    match file.as_str() {
        "app.css" => ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], CSS).into_response(),
        "app.js" => ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8")], JS).into_response(),
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}
