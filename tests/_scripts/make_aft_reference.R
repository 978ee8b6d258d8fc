# Reference values from R's `survival` package for Regent's parametric accelerated failure time
# models (survreg: Weibull, log-normal, log-logistic), their absolute risk at a horizon, and the
# Fleming-Harrington G^rho family of log-rank tests (survdiff(rho = )).
#
# Run once from the repository root, after make_survival_reference.R (it reads lung.csv,
# veteran.csv, gbsg.csv, flchain.csv and colon.csv written by that script; see the recoding
# described there):
#
#     Rscript tests/_scripts/make_aft_reference.R
#
# It writes tests/data/survival/aft_reference.json; every value is stored next to the R call
# that produced it ("call").  tests/analysis/test_aft_reference.py and
# tests/analysis/test_logrank_fh_reference.py read it and need no R.  Base R plus `survival`
# only (no jsonlite): the small JSON writer is the one of make_survival_reference.R.
#
# survreg is run with survreg.control(rel.tolerance = 1e-13, maxiter = 200): its default stopping
# rule (relative change in the log-likelihood below 1e-9) stops up to 1.2e-8 relative short of the
# maximum in a coefficient (veteran, log-logistic), and these values are compared at 1e-10.
#
# Conventions shared with Regent: text columns are factors with levels in C (code-point)
# order, so R's reference level is Regent's; Regent names an indicator "column=level".

suppressPackageStartupMessages(library(survival))
options(warn = 1)

out_dir <- file.path("tests", "data", "survival")

source(file.path("tests", "_scripts", "json_writer.R"))  # to_json(), arr()
c_levels <- function(x) sort(unique(as.character(x)), method = "radix")  # C / code-point order

# ---------------------------------------------------------------------------------------
# datasets: the CSVs written by make_survival_reference.R, text columns as C-ordered factors
# ---------------------------------------------------------------------------------------
read_model_frame <- function(file) {
  df <- read.csv(file.path(out_dir, file), stringsAsFactors = FALSE)
  for (nm in names(df)) if (is.character(df[[nm]])) df[[nm]] <- factor(df[[nm]], levels = c_levels(df[[nm]]))
  df
}
files <- c(lung = "lung.csv", veteran = "veteran.csv", gbsg = "gbsg.csv", flchain = "flchain.csv",
           colon = "colon.csv")
frames <- lapply(files, read_model_frame)

regent_terms <- function(df, covariates) {
  out <- character(0)
  for (v in covariates) {
    if (is.factor(df[[v]])) out <- c(out, paste0(v, "=", levels(df[[v]])[-1])) else out <- c(out, v)
  }
  out
}

# ---------------------------------------------------------------------------------------
# AFT: survreg(Surv(time, event) ~ ..., dist = ), and the risk 1 - S(h | x) of chosen rows
# ---------------------------------------------------------------------------------------
direct_risk <- function(dist, h, lp, scale) {
  # the same risk from each distribution's own CDF, independently of psurvreg
  switch(dist,
         weibull = pweibull(h, shape = 1 / scale, scale = exp(lp)),  # the CDF: 1 - S(h)
         lognormal = plnorm(h, meanlog = lp, sdlog = scale),
         loglogistic = plogis((log(h) - lp) / scale))
}
direct_call <- c(weibull = "pweibull(h, shape = 1 / fit$scale, scale = exp(lp))",
                 lognormal = "plnorm(h, meanlog = lp, sdlog = fit$scale)",
                 loglogistic = "plogis((log(h) - lp) / fit$scale)")

aft_ref <- function(id, dataset, covariates, dist, horizons, rows = 1:8) {
  df <- frames[[dataset]]
  rhs <- if (length(covariates)) paste(covariates, collapse = " + ") else "1"
  fit <- survreg(as.formula(paste("Surv(time, event) ~", rhs)), data = df, dist = dist,
                 control = survreg.control(rel.tolerance = 1e-13, maxiter = 200))
  tab <- summary(fit)$table
  lp <- predict(fit, newdata = df[rows, , drop = FALSE], type = "lp")
  risk <- lapply(horizons, function(h) arr(psurvreg(h, mean = lp, scale = fit$scale, distribution = dist)))
  risk_direct <- lapply(horizons, function(h) arr(direct_risk(dist, h, lp, fit$scale)))
  call <- sprintf(paste0("fit <- survreg(Surv(time, event) ~ %s, data = %s, dist = \"%s\", ",
                         "control = survreg.control(rel.tolerance = 1e-13, maxiter = 200)); ",
                         "summary(fit)$table; fit$loglik[2]; fit$scale"), rhs, dataset, dist)
  risk_call <- sprintf(paste0("lp <- predict(fit, newdata = %s[rows, ], type = \"lp\"); ",
                              "psurvreg(h, mean = lp, scale = fit$scale, distribution = \"%s\"); %s"),
                       dataset, dist, direct_call[[dist]])
  list(id = id, dataset = dataset, covariates = arr(covariates), dist = dist, call = call,
       terms = arr(c("(Intercept)", regent_terms(df, covariates), "Log(scale)")),
       r_terms = arr(rownames(tab)),
       coef = arr(tab[, "Value"]), se = arr(tab[, "Std. Error"]), z = arr(tab[, "z"]), p = arr(tab[, "p"]),
       loglik = fit$loglik[2], scale = fit$scale, n = nrow(df), events = sum(df$event == 1),
       iterations = unname(fit$iter),
       risk_call = risk_call, rows = arr(rows - 1),  # 0-based row positions, for pandas .iloc
       horizons = arr(horizons), lp = arr(lp), risk = risk, risk_direct = risk_direct)
}

lung_x <- c("age", "sex", "ph_ecog")
vet_x <- c("trt", "celltype", "karno", "age")
gbsg_x <- c("age", "size", "nodes", "grade", "hormon", "pgr")
aft <- list()
for (dist in c("weibull", "lognormal", "loglogistic")) {
  aft[[length(aft) + 1]] <- aft_ref(paste0("lung_", dist), "lung", lung_x, dist, c(180, 365))
  aft[[length(aft) + 1]] <- aft_ref(paste0("veteran_", dist), "veteran", vet_x, dist, c(30, 100),
                                    rows = c(1:4, 60:63, 120:123))
  aft[[length(aft) + 1]] <- aft_ref(paste0("gbsg_", dist), "gbsg", gbsg_x, dist, c(365, 1825))
}
aft[[length(aft) + 1]] <- aft_ref("lung_intercept_weibull", "lung", character(0), "weibull", c(180, 365))
aft[[length(aft) + 1]] <- aft_ref("flchain_weibull", "flchain", c("age", "sex", "kappa", "lambda", "mgus"),
                                  "weibull", c(1000, 4000))

# ---------------------------------------------------------------------------------------
# Fleming-Harrington G^rho: survdiff(rho = ), plain and stratified
# ---------------------------------------------------------------------------------------
fh_ref <- function(id, dataset, by, rho, strata = NULL, subset = NULL) {
  df <- frames[[dataset]]
  rhs <- if (is.null(strata)) by else paste0(by, " + strata(", strata, ")")
  data_expr <- dataset
  if (!is.null(subset)) {
    df <- df[eval(parse(text = subset), df), ]
    data_expr <- sprintf("subset(%s, %s)", dataset, subset)
  }
  fit <- survdiff(as.formula(paste("Surv(time, event) ~", rhs)), data = df, rho = rho)
  obs <- if (is.matrix(fit$obs)) rowSums(fit$obs) else fit$obs
  exp <- if (is.matrix(fit$exp)) rowSums(fit$exp) else fit$exp
  levs <- if (is.factor(df[[by]])) levels(droplevels(df[[by]])) else as.character(sort(unique(df[[by]])))
  list(id = id, dataset = dataset, by = by, rho = rho, strata = strata, subset = subset,
       call = sprintf("fit <- survdiff(Surv(time, event) ~ %s, data = %s, rho = %s); fit$obs; fit$exp; fit$var",
                      rhs, data_expr, format(rho)),
       groups = arr(levs), observed = arr(obs), expected = arr(exp),
       var = lapply(seq_len(nrow(fit$var)), function(i) arr(fit$var[i, ])),
       chisq = fit$chisq, df = length(fit$n) - 1,
       p = pchisq(fit$chisq, length(fit$n) - 1, lower.tail = FALSE))
}

fh <- list()
for (rho in c(0, 0.5, 1)) {
  tag <- sub(".", "", format(rho), fixed = TRUE)
  fh[[length(fh) + 1]] <- fh_ref(paste0("lung_sex_rho", tag), "lung", "sex", rho)
  fh[[length(fh) + 1]] <- fh_ref(paste0("veteran_celltype_rho", tag), "veteran", "celltype", rho)
  fh[[length(fh) + 1]] <- fh_ref(paste0("flchain_sex_rho", tag), "flchain", "sex", rho)
  fh[[length(fh) + 1]] <- fh_ref(paste0("lung_sex_strata_ecog_rho", tag), "lung", "sex", rho, strata = "ph_ecog")
  fh[[length(fh) + 1]] <- fh_ref(paste0("gbsg_hormon_strata_grade_rho", tag), "gbsg", "hormon", rho,
                                 strata = "grade")
  fh[[length(fh) + 1]] <- fh_ref(paste0("colon_death_rx_strata_node4_rho", tag), "colon", "rx", rho,
                                 strata = "node4", subset = "etype == 2")
}
fh[[length(fh) + 1]] <- fh_ref("veteran_trt_rho2", "veteran", "trt", 2)

ref <- list(
  meta = list(generated_by = "Rscript tests/_scripts/make_aft_reference.R",
              r_version = R.version.string,
              survival_version = as.character(packageVersion("survival")),
              note = paste("NA in R is stored as null. Text covariates are factors with levels in C",
                           "(code point) order so that R's reference level is Regent's. Datasets are",
                           "the CSVs of make_survival_reference.R.")),
  datasets = as.list(files),
  aft = aft,
  fh_logrank = fh
)

writeLines(to_json(ref), file.path(out_dir, "aft_reference.json"))
cat("wrote", file.path(out_dir, "aft_reference.json"), "\n")
