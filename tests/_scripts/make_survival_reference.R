# Reference values from R's `survival` package for Regent's survival statistics.
#
# Run once from the repository root:
#
#     Rscript tests/_scripts/make_survival_reference.R
#
# It writes the datasets it uses as CSV into tests/data/survival/ and the reference values
# into tests/data/survival/reference.json; every value is stored next to the R call that
# produced it ("call").  tests/analysis/test_survival_reference.py reads those files and
# needs no R.  Base R plus `survival` only (no jsonlite): a small JSON writer is below.
#
# Datasets (all from R's survival package) and their recoding:
#   lung.csv     survival::lung, columns inst, time, status, age, sex, ph.ecog (renamed
#                ph_ecog); rows with NA in inst or ph.ecog dropped (226 of 228 kept).
#                event = status - 1  (lung codes 1 = censored, 2 = dead).
#   veteran.csv  survival::veteran, all 137 rows; event = status (already 0/1).
#                celltype written as text; in the R models it is a factor whose levels are
#                sorted in C (code point) order, so the reference level is "adeno", as
#                Regent's design matrix does (R's own factor order would be "squamous").
#   gbsg.csv     survival::gbsg, all 686 rows; time = rfstime, event = status (already 0/1).
#   flchain.csv  survival::flchain, every 4th row (rows 1, 5, 9, ...: 1969 rows) to keep the
#                file small; columns without NA only (creatinine and chapter are left out);
#                time = futime, event = death (already 0/1); flc.grp renamed flc_grp.
#   colon.csv    survival::colon, all 1858 rows (two per patient: etype 1 = recurrence,
#                2 = death); columns id, rx, sex, age, obstruct, node4, extent, time, status,
#                etype (no NA among them; nodes and differ have NA and are left out);
#                event = status (already 0/1); rx written as text, factor levels in C order
#                ("Lev" is the reference; R's own order would make "Obs" the reference).
#   km_edge.csv  a 12-row hand-made set (not from R) for the quantile edge cases: group "a"
#                whose curve ends exactly at 0.5, group "b" whose curve sits at 0.5 and then
#                drops, and group "c" whose last person dies (survival reaches 0).

suppressPackageStartupMessages(library(survival))
options(warn = 1)

out_dir <- file.path("tests", "data", "survival")
dir.create(out_dir, recursive = TRUE, showWarnings = FALSE)

source(file.path("tests", "_scripts", "json_writer.R"))  # to_json(), arr()
c_levels <- function(x) sort(unique(as.character(x)), method = "radix")  # C / code-point order

# ---------------------------------------------------------------------------------------
# datasets
# ---------------------------------------------------------------------------------------
lung_df <- survival::lung
lung_df <- lung_df[!is.na(lung_df$inst) & !is.na(lung_df$ph.ecog), ]
lung_df <- data.frame(inst = lung_df$inst, time = lung_df$time, event = lung_df$status - 1,
                      age = lung_df$age, sex = lung_df$sex, ph_ecog = lung_df$ph.ecog)

vet_df <- survival::veteran
vet_df <- data.frame(time = vet_df$time, event = vet_df$status, trt = vet_df$trt,
                     celltype = as.character(vet_df$celltype), karno = vet_df$karno,
                     age = vet_df$age, diagtime = vet_df$diagtime, prior = vet_df$prior)

gbsg_df <- survival::gbsg
gbsg_df <- data.frame(pid = gbsg_df$pid, time = gbsg_df$rfstime, event = gbsg_df$status,
                      age = gbsg_df$age, meno = gbsg_df$meno, size = gbsg_df$size,
                      grade = gbsg_df$grade, nodes = gbsg_df$nodes, pgr = gbsg_df$pgr,
                      er = gbsg_df$er, hormon = gbsg_df$hormon)

fl <- survival::flchain
fl <- fl[seq(1, nrow(fl), by = 4), ]
fl_df <- data.frame(time = fl$futime, event = fl$death, age = fl$age, sex = as.character(fl$sex),
                    kappa = fl$kappa, lambda = fl$lambda, flc_grp = fl$flc.grp, mgus = fl$mgus)

co <- survival::colon
colon_df <- data.frame(id = co$id, rx = as.character(co$rx), sex = co$sex, age = co$age,
                       obstruct = co$obstruct, node4 = co$node4, extent = co$extent,
                       time = co$time, event = co$status, etype = co$etype)

edge_df <- data.frame(
  group = c(rep("a", 4), rep("b", 4), rep("c", 4)),
  time  = c(1, 2, 3, 4,   1, 2, 3, 4,   1, 2, 3, 4),
  event = c(1, 1, 0, 0,   1, 1, 1, 1,   0, 1, 0, 1)
)

write_csv <- function(df, name) {
  write.csv(df, file.path(out_dir, name), row.names = FALSE, quote = TRUE)
}
write_csv(lung_df, "lung.csv")
write_csv(vet_df, "veteran.csv")
write_csv(gbsg_df, "gbsg.csv")
write_csv(fl_df, "flchain.csv")
write_csv(colon_df, "colon.csv")
write_csv(edge_df, "km_edge.csv")

# the same frames as R models see them: text columns as factors with C-ordered levels
as_model <- function(df) {
  for (nm in names(df)) if (is.character(df[[nm]])) df[[nm]] <- factor(df[[nm]], levels = c_levels(df[[nm]]))
  df
}
frames <- list(lung = as_model(lung_df), veteran = as_model(vet_df), gbsg = as_model(gbsg_df),
               flchain = as_model(fl_df), colon = as_model(colon_df), km_edge = as_model(edge_df))

# ---------------------------------------------------------------------------------------
# Kaplan-Meier: survfit(conf.type = "log-log"), summary(times =), quantile(0.5)
# ---------------------------------------------------------------------------------------
km_ref <- function(id, dataset, by, times, with_curve = FALSE) {
  df <- frames[[dataset]]
  fml <- as.formula(paste("Surv(time, event) ~", by))
  fit <- survfit(fml, data = df, conf.type = "log-log")
  q <- quantile(fit, probs = 0.5)
  levs <- if (is.factor(df[[by]])) levels(df[[by]]) else as.character(sort(unique(df[[by]])))
  groups <- list()
  for (i in seq_along(levs)) {
    sub <- fit[i]
    s <- summary(sub, times = times)  # times beyond the group's last time are dropped by R
    full <- list(time = arr(sub$time), n_risk = arr(sub$n.risk), n_event = arr(sub$n.event),
                 survival = arr(sub$surv), std_err = arr(sub$std.err),
                 lower = arr(sub$lower), upper = arr(sub$upper))
    groups[[i]] <- list(
      group = levs[i],
      n = sub$n,
      events = sum(sub$n.event),
      median = unname(q$quantile[i, 1]),
      median_lower = unname(q$lower[i, 1]),
      median_upper = unname(q$upper[i, 1]),
      at = list(time = arr(s$time), survival = arr(s$surv), lower = arr(s$lower),
                upper = arr(s$upper), n_risk = arr(s$n.risk)),
      curve = if (with_curve) full else NULL  # the whole curve, for the small sets only
    )
  }
  call <- sprintf(paste0("fit <- survfit(Surv(time, event) ~ %s, data = %s, conf.type = \"log-log\"); ",
                         "summary(fit[i], times = c(%s)); quantile(fit, probs = 0.5)"),
                  by, dataset, paste(times, collapse = ", "))
  list(id = id, dataset = dataset, by = by, times = arr(times), call = call, groups = groups)
}

km <- list(
  km_ref("lung_by_sex", "lung", "sex", c(0, 92, 180, 201, 365, 550, 730, 900), with_curve = TRUE),
  km_ref("veteran_by_trt", "veteran", "trt", c(7, 30, 100, 200, 365, 553), with_curve = TRUE),
  km_ref("veteran_by_celltype", "veteran", "celltype", c(10, 30, 90, 180), with_curve = TRUE),
  km_ref("gbsg_by_hormon", "gbsg", "hormon", c(365, 730, 1084, 1825, 2500)),
  km_ref("flchain_by_sex", "flchain", "sex", c(365, 1000, 2000, 3000, 4000)),
  km_ref("edge_by_group", "km_edge", "group", c(1, 2, 3, 4), with_curve = TRUE)
)

# ---------------------------------------------------------------------------------------
# log-rank: survdiff, plain and stratified
# ---------------------------------------------------------------------------------------
lr_ref <- function(id, dataset, by, strata = NULL, subset = NULL) {
  df <- frames[[dataset]]
  rhs <- if (is.null(strata)) by else paste0(by, " + strata(", strata, ")")
  data_expr <- dataset
  if (!is.null(subset)) {
    df <- df[eval(parse(text = subset), df), ]
    data_expr <- sprintf("subset(%s, %s)", dataset, subset)
  }
  fit <- survdiff(as.formula(paste("Surv(time, event) ~", rhs)), data = df)
  obs <- if (is.matrix(fit$obs)) rowSums(fit$obs) else fit$obs
  exp <- if (is.matrix(fit$exp)) rowSums(fit$exp) else fit$exp
  levs <- if (is.factor(df[[by]])) levels(droplevels(df[[by]])) else as.character(sort(unique(df[[by]])))
  list(id = id, dataset = dataset, by = by, strata = strata, subset = subset,
       call = sprintf("survdiff(Surv(time, event) ~ %s, data = %s)", rhs, data_expr),
       groups = arr(levs), observed = arr(obs), expected = arr(exp),
       chisq = fit$chisq, df = length(fit$n) - 1,
       p = pchisq(fit$chisq, length(fit$n) - 1, lower.tail = FALSE))
}

logrank <- list(
  lr_ref("lung_sex", "lung", "sex"),
  lr_ref("veteran_celltype", "veteran", "celltype"),
  lr_ref("flchain_sex", "flchain", "sex"),
  lr_ref("lung_sex_strata_ecog", "lung", "sex", strata = "ph_ecog"),
  lr_ref("veteran_trt_strata_celltype", "veteran", "trt", strata = "celltype"),
  lr_ref("gbsg_hormon_strata_grade", "gbsg", "hormon", strata = "grade"),
  lr_ref("colon_death_rx_strata_node4", "colon", "rx", strata = "node4", subset = "etype == 2")
)

# ---------------------------------------------------------------------------------------
# Cox: coxph (Efron / Breslow, strata, robust = TRUE, cluster())
# ---------------------------------------------------------------------------------------
regent_terms <- function(df, covariates) {
  out <- character(0)
  for (v in covariates) {
    if (is.factor(df[[v]])) out <- c(out, paste0(v, "=", levels(df[[v]])[-1])) else out <- c(out, v)
  }
  out
}

cox_ref <- function(id, dataset, covariates, ties = "efron", strata = NULL, cluster = NULL,
                    robust = FALSE) {
  df <- frames[[dataset]]
  rhs <- paste(covariates, collapse = " + ")
  if (!is.null(strata)) rhs <- paste0(rhs, " + strata(", strata, ")")
  if (!is.null(cluster)) rhs <- paste0(rhs, " + cluster(", cluster, ")")
  extra <- if (robust) ", robust = TRUE" else ""
  fml <- as.formula(paste("Surv(time, event) ~", rhs))
  fit <- if (robust) coxph(fml, data = df, ties = ties, robust = TRUE) else coxph(fml, data = df, ties = ties)
  is_robust <- !is.null(fit$naive.var)
  naive <- if (is_robust) fit$naive.var else fit$var
  conc <- concordance(fit)
  cnt <- conc$count
  if (is.matrix(cnt)) cnt <- colSums(cnt)  # stratified: one row per stratum
  call <- sprintf("fit <- coxph(Surv(time, event) ~ %s, data = %s, ties = \"%s\"%s); concordance(fit)",
                  rhs, dataset, ties, extra)
  list(id = id, dataset = dataset, covariates = arr(covariates), ties = ties, strata = strata,
       cluster = cluster, robust = robust, call = call,
       terms = arr(regent_terms(df, covariates)), r_terms = arr(names(coef(fit))),
       coef = arr(coef(fit)), se = arr(sqrt(diag(naive))),
       robust_se = if (is_robust) arr(sqrt(diag(fit$var))) else NULL,
       loglik_null = fit$loglik[1], loglik = fit$loglik[2],
       concordance = unname(conc$concordance),
       concordance_counts = as.list(cnt[c("concordant", "discordant", "tied.x", "tied.y", "tied.xy")]),
       n = fit$n, events = fit$nevent, iterations = fit$iter)
}

cox <- list(
  cox_ref("lung_efron", "lung", c("age", "sex", "ph_ecog"), "efron"),
  cox_ref("lung_breslow", "lung", c("age", "sex", "ph_ecog"), "breslow"),
  cox_ref("veteran_efron", "veteran", c("trt", "celltype", "karno", "age"), "efron"),
  cox_ref("veteran_breslow", "veteran", c("trt", "celltype", "karno", "age"), "breslow"),
  cox_ref("flchain_efron", "flchain", c("age", "sex", "kappa", "lambda", "mgus"), "efron"),
  cox_ref("flchain_breslow", "flchain", c("age", "sex", "kappa", "lambda", "mgus"), "breslow"),
  cox_ref("lung_strata_sex_efron", "lung", c("age", "ph_ecog"), "efron", strata = "sex"),
  cox_ref("veteran_strata_celltype_breslow", "veteran", c("trt", "karno", "age"), "breslow",
          strata = "celltype"),
  cox_ref("gbsg_robust_efron", "gbsg", c("age", "size", "nodes", "grade", "hormon", "pgr"), "efron",
          robust = TRUE),
  cox_ref("gbsg_robust_breslow", "gbsg", c("age", "size", "nodes", "grade", "hormon", "pgr"), "breslow",
          robust = TRUE),
  cox_ref("lung_robust_efron", "lung", c("age", "sex", "ph_ecog"), "efron", robust = TRUE),
  cox_ref("lung_cluster_inst_efron", "lung", c("age", "sex", "ph_ecog"), "efron", cluster = "inst"),
  cox_ref("lung_cluster_inst_breslow", "lung", c("age", "sex", "ph_ecog"), "breslow", cluster = "inst"),
  cox_ref("colon_cluster_strata_efron", "colon", c("rx", "sex", "age", "obstruct", "node4", "extent"),
          "efron", strata = "etype", cluster = "id"),
  cox_ref("colon_cluster_strata_breslow", "colon", c("rx", "sex", "age", "obstruct", "node4", "extent"),
          "breslow", strata = "etype", cluster = "id")
)

# ---------------------------------------------------------------------------------------
# baseline cumulative hazard: basehaz(fit, centered = FALSE), at the event times
# ---------------------------------------------------------------------------------------
bh_ref <- function(id, dataset, covariates, ties) {
  df <- frames[[dataset]]
  rhs <- paste(covariates, collapse = " + ")
  fit <- coxph(as.formula(paste("Surv(time, event) ~", rhs)), data = df, ties = ties)
  bh <- basehaz(fit, centered = FALSE)
  sf <- survfit(fit, se.fit = FALSE)
  keep <- sf$n.event > 0
  list(id = id, dataset = dataset, covariates = arr(covariates), ties = ties,
       call = sprintf(paste0("fit <- coxph(Surv(time, event) ~ %s, data = %s, ties = \"%s\"); ",
                             "basehaz(fit, centered = FALSE)  # rows with n.event > 0"), rhs, dataset, ties),
       coef = arr(coef(fit)), time = arr(bh$time[keep]), cumhaz = arr(bh$hazard[keep]))
}

basehaz_ref <- list(
  bh_ref("lung_efron", "lung", c("age", "sex", "ph_ecog"), "efron"),
  bh_ref("lung_breslow", "lung", c("age", "sex", "ph_ecog"), "breslow"),
  bh_ref("flchain_efron", "flchain", c("age", "kappa", "lambda", "mgus"), "efron")
)

# ---------------------------------------------------------------------------------------
# concordance of a raw score (higher score = shorter survival), plain and stratified
# ---------------------------------------------------------------------------------------
conc_ref <- function(id, dataset, score, strata = NULL) {
  df <- frames[[dataset]]
  rhs <- if (is.null(strata)) score else paste0(score, " + strata(", strata, ")")
  fit <- concordance(as.formula(paste("Surv(time, event) ~", rhs)), data = df, reverse = TRUE)
  cnt <- fit$count
  if (is.matrix(cnt)) cnt <- colSums(cnt)  # stratified: one row per stratum
  list(id = id, dataset = dataset, score = score, strata = strata,
       call = sprintf("concordance(Surv(time, event) ~ %s, data = %s, reverse = TRUE)", rhs, dataset),
       concordance = unname(fit$concordance),
       counts = as.list(cnt[c("concordant", "discordant", "tied.x", "tied.y", "tied.xy")]))
}

concordance_ref <- list(
  conc_ref("flchain_flc_grp", "flchain", "flc_grp"),
  conc_ref("flchain_age_strata_sex", "flchain", "age", strata = "sex"),
  conc_ref("lung_ph_ecog", "lung", "ph_ecog"),
  conc_ref("gbsg_nodes", "gbsg", "nodes")
)

datasets <- list(
  lung = list(file = "lung.csv", source = "survival::lung", n = nrow(lung_df),
              recoding = "event = status - 1 (1 censored, 2 dead); rows with NA inst or ph.ecog dropped; ph.ecog -> ph_ecog"),
  veteran = list(file = "veteran.csv", source = "survival::veteran", n = nrow(vet_df),
                 recoding = "event = status (0/1); celltype as text, reference level 'adeno' (C-sorted)"),
  gbsg = list(file = "gbsg.csv", source = "survival::gbsg", n = nrow(gbsg_df),
              recoding = "time = rfstime; event = status (0/1)"),
  flchain = list(file = "flchain.csv", source = "survival::flchain, rows seq(1, 7874, by = 4)",
                 n = nrow(fl_df),
                 recoding = "time = futime; event = death (0/1); flc.grp -> flc_grp; creatinine, chapter dropped (NA)"),
  colon = list(file = "colon.csv", source = "survival::colon", n = nrow(colon_df),
               recoding = "event = status (0/1); rx as text, reference level 'Lev' (C-sorted); nodes, differ dropped (NA)"),
  km_edge = list(file = "km_edge.csv", source = "hand-made (quantile edge cases)", n = nrow(edge_df),
                 recoding = "none")
)

ref <- list(
  meta = list(generated_by = "Rscript tests/_scripts/make_survival_reference.R",
              r_version = R.version.string,
              survival_version = as.character(packageVersion("survival")),
              note = paste("NA in R is stored as null. Text covariates are factors with levels in C",
                           "(code point) order so that R's reference level is Regent's.")),
  datasets = datasets,
  km = km,
  logrank = logrank,
  cox = cox,
  basehaz = basehaz_ref,
  concordance = concordance_ref
)

writeLines(to_json(ref), file.path(out_dir, "reference.json"))
cat("wrote", file.path(out_dir, "reference.json"), "\n")
