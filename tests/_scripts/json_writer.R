# A minimal JSON writer shared by the reference scripts (sourced from the repository root):
# named list -> object, unnamed list -> array, atomic vectors of length 1 -> scalar (wrap with
# I() to force an array: arr()), NA / NaN / Inf -> null, numbers with 17 significant digits.
json_str <- function(s) {
  s <- gsub("\\\\", "\\\\\\\\", s)
  s <- gsub("\"", "\\\\\"", s)
  s <- gsub("\n", "\\\\n", s)
  paste0("\"", s, "\"")
}
json_atom <- function(v) {
  if (is.na(v)) return("null")
  if (is.logical(v)) return(if (v) "true" else "false")
  if (is.numeric(v)) {
    if (!is.finite(v)) return("null")
    return(sprintf("%.17g", v))
  }
  json_str(as.character(v))
}
to_json <- function(x, indent = 0) {
  pad <- strrep("  ", indent + 1)
  end <- strrep("  ", indent)
  if (is.null(x)) return("null")
  if (is.factor(x)) x <- as.character(x)
  if (is.list(x)) {
    if (length(x) == 0) return(if (is.null(names(x))) "[]" else "{}")
    items <- vapply(x, to_json, "", indent = indent + 1)
    if (!is.null(names(x))) {
      items <- paste0(json_str(names(x)), ": ", items)
      return(paste0("{\n", pad, paste(items, collapse = paste0(",\n", pad)), "\n", end, "}"))
    }
    return(paste0("[\n", pad, paste(items, collapse = paste0(",\n", pad)), "\n", end, "]"))
  }
  if (length(x) == 1 && !inherits(x, "AsIs")) return(json_atom(unclass(x)))
  paste0("[", paste(vapply(unclass(x), json_atom, ""), collapse = ", "), "]")
}
arr <- function(x) I(unname(as.vector(x)))
