# Reference values from R's `survival` and `cmprsk` packages for Regent's RMST, competing-risks
# statistics (Aalen-Johansen cumulative incidence, Gray's test, Fine-Gray regression,
# cause-specific Cox) and the proportional-hazards test (cox.zph).
#
# Run once from the repository root, after make_survival_reference.R (it reads lung.csv,
# veteran.csv, gbsg.csv, flchain.csv and km_edge.csv written by that script):
#
#     Rscript tests/_scripts/make_competing_reference.R
#
# It writes mgus2.csv, pbc.csv and cr_ties.csv into tests/data/survival/ and the reference values
# into tests/data/survival/competing_reference.json; every value is stored next to the R call
# that produced it ("call").  tests/analysis/test_competing_reference.py reads those files and
# needs no R.  Base R plus `survival` and `cmprsk` only (no jsonlite).
#
# Datasets and their recoding:
#   mgus2.csv    survival::mgus2, all 1384 rows: columns id, time, event, age, sex, hgb, mspike,
#                agegrp.  time = ptime if progression (pstat = 1) else futime; event = 1 for
#                progression to a plasma-cell malignancy (PCM), 2 for death before PCM (the
#                competing event), 0 censored (the coding of the survival package's "compete"
#                vignette).  hgb and mspike have NA (written as NA).  agegrp = "<70" / ">=70".
#   pbc.csv      survival::pbc, the 312 randomised patients (rows 1-312): columns id, time,
#                event, trt, age, sex, edema, log_bili, albumin.  event = 1 death (pbc status
#                2), 2 liver transplant (pbc status 1, the competing event), 0 censored;
#                log_bili = log(bili); edema numeric (0, 0.5, 1).
#   cr_ties.csv  a 14-row hand-made set (not from R) with ties between causes, between an event
#                and a censoring, and a group whose last person has the event.
#
# Conventions shared with Regent: text columns are factors with levels in C (code-point)
# order, so R's reference level is Regent's.

suppressPackageStartupMessages({
  library(survival)
  library(cmprsk)
})
options(warn = 1)

out_dir <- file.path("tests", "data", "survival")

source(file.path("tests", "_scripts", "json_writer.R"))  # to_json(), arr()
c_levels <- function(x) sort(unique(as.character(x)), method = "radix")
as_model <- function(df) {
  for (nm in names(df)) if (is.character(df[[nm]])) df[[nm]] <- factor(df[[nm]], levels = c_levels(df[[nm]]))
  df
}
write_csv <- function(df, name) write.csv(df, file.path(out_dir, name), row.names = FALSE, quote = TRUE)
read_csv <- function(name) read.csv(file.path(out_dir, name), stringsAsFactors = FALSE)

# ---------------------------------------------------------------------------------------
# datasets
# ---------------------------------------------------------------------------------------
m <- survival::mgus2
mgus_df <- data.frame(
  id = m$id,
  time = ifelse(m$pstat == 0, m$futime, m$ptime),
  event = ifelse(m$pstat == 0, 2 * m$death, 1),
  age = m$age, sex = as.character(m$sex), hgb = m$hgb, mspike = m$mspike,
  agegrp = ifelse(m$age < 70, "<70", ">=70")
)
p <- survival::pbc[1:312, ]
pbc_df <- data.frame(
  id = p$id, time = p$time,
  event = ifelse(p$status == 2, 1, ifelse(p$status == 1, 2, 0)),
  trt = p$trt, age = p$age, sex = as.character(p$sex), edema = p$edema,
  log_bili = log(p$bili), albumin = p$albumin
)
ties_df <- data.frame(
  group = c(rep("a", 7), rep("b", 7)),
  time  = c(1, 2, 2, 2, 3, 4, 5,   1, 1, 2, 3, 3, 4, 4),
  event = c(1, 1, 2, 0, 2, 0, 1,   2, 0, 1, 1, 2, 0, 1)
)
write_csv(mgus_df, "mgus2.csv")
write_csv(pbc_df, "pbc.csv")
write_csv(ties_df, "cr_ties.csv")

frames <- list(
  mgus2 = as_model(mgus_df), pbc = as_model(pbc_df), cr_ties = as_model(ties_df),
  lung = as_model(read_csv("lung.csv")), veteran = as_model(read_csv("veteran.csv")),
  gbsg = as_model(read_csv("gbsg.csv")), flchain = as_model(read_csv("flchain.csv")),
  km_edge = as_model(read_csv("km_edge.csv"))
)
group_levels <- function(df, by) {
  if (is.factor(df[[by]])) levels(droplevels(df[[by]])) else as.character(sort(unique(df[[by]])))
}

# ---------------------------------------------------------------------------------------
# RMST: summary(survfit(Surv(time, event) ~ by), rmean = tau)$table  (survival:::survmean)
# ---------------------------------------------------------------------------------------
rmst_ref <- function(id, dataset, by, tau) {
  df <- frames[[dataset]]
  rhs <- if (is.null(by)) "1" else by
  fit <- survfit(as.formula(paste("Surv(time, event) ~", rhs)), data = df)
  tab <- summary(fit, rmean = tau)$table
  if (is.null(dim(tab))) tab <- matrix(tab, nrow = 1, dimnames = list(NULL, names(tab)))
  levs <- if (is.null(by)) "all" else group_levels(df, by)
  last <- if (is.null(by)) max(df$time) else sapply(levs, function(l) max(df$time[as.character(df[[by]]) == l]))
  list(id = id, dataset = dataset, by = by, tau = tau,
       call = sprintf("summary(survfit(Surv(time, event) ~ %s, data = %s), rmean = %s)$table[, c(\"rmean\", \"se(rmean)\")]",
                      rhs, dataset, format(tau)),
       groups = arr(levs), n = arr(tab[, "records"]), events = arr(tab[, "events"]),
       rmean = arr(tab[, "rmean"]), se = arr(tab[, "se(rmean)"]), last_time = arr(last))
}
rmst <- list(
  rmst_ref("lung_by_sex_365", "lung", "sex", 365),
  rmst_ref("lung_all_730", "lung", NULL, 730),
  rmst_ref("gbsg_by_hormon_1826", "gbsg", "hormon", 1826),
  rmst_ref("veteran_by_celltype_200", "veteran", "celltype", 200),
  rmst_ref("veteran_by_trt_553", "veteran", "trt", 553),
  rmst_ref("edge_by_group_2.5", "km_edge", "group", 2.5),
  rmst_ref("edge_by_group_6", "km_edge", "group", 6)
)

# ---------------------------------------------------------------------------------------
# Aalen-Johansen: survfit(Surv(time, factor(event)) ~ by), multi-state; the whole curve
# (std.err is the infinitesimal-jackknife SE of pstate; CI conf.type = "log", the default)
# ---------------------------------------------------------------------------------------
cif_ref <- function(id, dataset, by) {
  df <- frames[[dataset]]
  states <- sort(unique(df$event))
  df$fevent <- factor(df$event, levels = states)
  rhs <- if (is.null(by)) "1" else by
  fit <- survfit(as.formula(paste("Surv(time, fevent) ~", rhs)), data = df)
  levs <- if (is.null(by)) "all" else group_levels(df, by)
  groups <- list()
  for (i in seq_along(levs)) {
    sub <- if (is.null(by)) fit else fit[i, ]
    causes <- list()
    for (k in states[states > 0]) {
      j <- match(as.character(k), sub$states)
      causes[[as.character(k)]] <- list(
        pstate = arr(sub$pstate[, j]), std_err = arr(sub$std.err[, j]),
        lower = arr(sub$lower[, j]), upper = arr(sub$upper[, j]))
    }
    groups[[i]] <- list(group = levs[i], n = sub$n, time = arr(sub$time),
                        n_risk = arr(sub$n.risk[, 1]), causes = causes)
  }
  list(id = id, dataset = dataset, by = by,
       call = sprintf("fit <- survfit(Surv(time, factor(event)) ~ %s, data = %s); fit[i, ]$pstate, $std.err, $lower, $upper",
                      rhs, dataset),
       groups = groups)
}
cif <- list(
  cif_ref("mgus2_by_sex", "mgus2", "sex"),
  cif_ref("mgus2_all", "mgus2", NULL),
  cif_ref("pbc_by_trt", "pbc", "trt"),
  cif_ref("ties_by_group", "cr_ties", "group")
)

# ---------------------------------------------------------------------------------------
# Gray's test: cmprsk::cuminc(ftime, fstatus, group, strata, rho)$Tests
# ---------------------------------------------------------------------------------------
gray_ref <- function(id, dataset, by, strata = NULL, rho = 0) {
  df <- frames[[dataset]]
  st <- if (is.null(strata)) rep(1, nrow(df)) else df[[strata]]
  ci <- cuminc(df$time, df$event, df[[by]], strata = st, rho = rho, cencode = 0)
  tests <- ci$Tests
  list(id = id, dataset = dataset, by = by, strata = strata, rho = rho,
       call = sprintf("cuminc(%s$time, %s$event, group = %s$%s%s, rho = %s)$Tests",
                      dataset, dataset, dataset, by,
                      if (is.null(strata)) "" else sprintf(", strata = %s$%s", dataset, strata), format(rho)),
       causes = arr(as.integer(rownames(tests))), stat = arr(tests[, "stat"]),
       p = arr(tests[, "pv"]), df = arr(tests[, "df"]))
}
gray <- list(
  gray_ref("mgus2_by_sex", "mgus2", "sex"),
  gray_ref("mgus2_by_sex_strata_agegrp", "mgus2", "sex", strata = "agegrp"),
  gray_ref("pbc_by_trt", "pbc", "trt"),
  gray_ref("pbc_by_edema", "pbc", "edema"),
  gray_ref("pbc_by_trt_rho1", "pbc", "trt", rho = 1),
  gray_ref("ties_by_group", "cr_ties", "group")
)

# ---------------------------------------------------------------------------------------
# Fine-Gray: cmprsk::crr on complete cases (coefficients, sandwich SE, log pseudo-likelihood),
# iterated to a tighter tolerance than crr's default (gtol = 1e-6 stops ~1e-5 short on pbc);
# finegray() + coxph(weights = fgwt) is stored beside it for the documentation only
# ---------------------------------------------------------------------------------------
fg_ref <- function(id, dataset, covariates, failcode) {
  df <- frames[[dataset]]
  df <- df[complete.cases(df[, c("time", "event", covariates)]), ]
  rhs <- paste(covariates, collapse = " + ")
  x <- model.matrix(as.formula(paste("~", rhs)), data = df)[, -1, drop = FALSE]
  fit <- crr(df$time, df$event, x, failcode = failcode, cencode = 0, gtol = 1e-10, maxiter = 50)
  sdf <- df[, c("time", "event", covariates)]
  sdf$fevent <- factor(sdf$event, levels = sort(unique(sdf$event)))
  pdata <- finegray(as.formula(paste("Surv(time, fevent) ~", rhs)), data = sdf, etype = as.character(failcode))
  cfit <- coxph(as.formula(paste("Surv(fgstart, fgstop, fgstatus) ~", rhs)), data = pdata,
                weights = fgwt, ties = "breslow")
  list(id = id, dataset = dataset, covariates = arr(covariates), cause = failcode,
       call = sprintf("x <- model.matrix(~ %s, data = cc)[, -1]; crr(cc$time, cc$event, x, failcode = %d, cencode = 0, gtol = 1e-10, maxiter = 50)  # cc = complete cases of %s",
                      rhs, failcode, dataset),
       n = fit$n, r_terms = arr(names(fit$coef)), coef = arr(fit$coef), se = arr(sqrt(diag(fit$var))),
       loglik = fit$loglik, loglik_null = fit$loglik.null, converged = fit$converged,
       finegray_coxph_call = sprintf("coxph(Surv(fgstart, fgstop, fgstatus) ~ %s, weights = fgwt, ties = \"breslow\", data = finegray(Surv(time, factor(event)) ~ ., cc, etype = \"%d\"))",
                                     rhs, failcode),
       finegray_coxph_coef = arr(coef(cfit)), finegray_coxph_se = arr(sqrt(diag(cfit$var))))
}
finegray_ref <- list(
  fg_ref("mgus2_pcm", "mgus2", c("age", "sex", "hgb", "mspike"), 1),
  fg_ref("mgus2_death", "mgus2", c("age", "sex", "hgb", "mspike"), 2),
  fg_ref("pbc_death", "pbc", c("age", "sex", "edema", "log_bili", "albumin"), 1),
  fg_ref("pbc_transplant", "pbc", c("age", "edema", "log_bili", "albumin"), 2),
  fg_ref("ties_group", "cr_ties", c("group"), 1)
)

# ---------------------------------------------------------------------------------------
# cause-specific Cox: coxph(Surv(time, event == k) ~ ...) on complete cases
# ---------------------------------------------------------------------------------------
cs_ref <- function(id, dataset, covariates, cause, ties = "efron") {
  df <- frames[[dataset]]
  df <- df[complete.cases(df[, c("time", "event", covariates)]), ]
  rhs <- paste(covariates, collapse = " + ")
  fit <- coxph(as.formula(sprintf("Surv(time, event == %d) ~ %s", cause, rhs)), data = df, ties = ties)
  list(id = id, dataset = dataset, covariates = arr(covariates), cause = cause, ties = ties,
       call = sprintf("coxph(Surv(time, event == %d) ~ %s, data = cc, ties = \"%s\")  # cc = complete cases of %s",
                      cause, rhs, ties, dataset),
       n = fit$n, events = fit$nevent, coef = arr(coef(fit)), se = arr(sqrt(diag(fit$var))))
}
cause_specific <- list(
  cs_ref("mgus2_pcm", "mgus2", c("age", "sex", "hgb", "mspike"), 1),
  cs_ref("mgus2_death", "mgus2", c("age", "sex", "hgb", "mspike"), 2),
  cs_ref("pbc_transplant_breslow", "pbc", c("age", "edema", "log_bili", "albumin"), 2, "breslow")
)

# ---------------------------------------------------------------------------------------
# proportional-hazards test: cox.zph(fit) (transform = "km", terms = TRUE), survival 3.5
# ---------------------------------------------------------------------------------------
zph_ref <- function(id, dataset, covariates, ties, strata = NULL) {
  df <- frames[[dataset]]
  rhs <- paste(covariates, collapse = " + ")
  if (!is.null(strata)) rhs <- paste0(rhs, " + strata(", strata, ")")
  fit <- coxph(as.formula(paste("Surv(time, event) ~", rhs)), data = df, ties = ties)
  z <- cox.zph(fit)
  tab <- z$table
  list(id = id, dataset = dataset, covariates = arr(covariates), ties = ties, strata = strata,
       call = sprintf("cox.zph(coxph(Surv(time, event) ~ %s, data = %s, ties = \"%s\"))$table",
                      rhs, dataset, ties),
       rows = arr(rownames(tab)), chisq = arr(tab[, "chisq"]), df = arr(tab[, "df"]), p = arr(tab[, "p"]))
}
zph <- list(
  zph_ref("lung_efron", "lung", c("age", "sex", "ph_ecog"), "efron"),
  zph_ref("lung_breslow", "lung", c("age", "sex", "ph_ecog"), "breslow"),
  zph_ref("veteran_efron", "veteran", c("trt", "celltype", "karno", "age"), "efron"),
  zph_ref("veteran_breslow", "veteran", c("trt", "celltype", "karno", "age"), "breslow"),
  zph_ref("gbsg_efron", "gbsg", c("age", "size", "nodes", "grade", "hormon", "pgr"), "efron"),
  zph_ref("lung_strata_sex_efron", "lung", c("age", "ph_ecog"), "efron", strata = "sex"),
  zph_ref("flchain_efron", "flchain", c("age", "sex", "kappa", "lambda", "mgus"), "efron")
)

datasets <- list(
  mgus2 = list(file = "mgus2.csv", source = "survival::mgus2", n = nrow(mgus_df),
               recoding = "time = ptime if pstat == 1 else futime; event = 1 PCM, 2 death before PCM, 0 censored; agegrp = age < 70"),
  pbc = list(file = "pbc.csv", source = "survival::pbc[1:312, ]", n = nrow(pbc_df),
             recoding = "event = 1 death (status 2), 2 transplant (status 1), 0 censored; log_bili = log(bili)"),
  cr_ties = list(file = "cr_ties.csv", source = "hand-made (ties between causes and with censoring)",
                 n = nrow(ties_df), recoding = "none")
)

ref <- list(
  meta = list(generated_by = "Rscript tests/_scripts/make_competing_reference.R",
              r_version = R.version.string,
              survival_version = as.character(packageVersion("survival")),
              cmprsk_version = as.character(packageVersion("cmprsk")),
              note = "NA in R is stored as null. Text covariates are factors with levels in C (code point) order."),
  datasets = datasets,
  rmst = rmst,
  cif = cif,
  gray = gray,
  finegray = finegray_ref,
  cause_specific = cause_specific,
  zph = zph
)
writeLines(to_json(ref), file.path(out_dir, "competing_reference.json"))
cat("wrote", file.path(out_dir, "competing_reference.json"), "\n")
