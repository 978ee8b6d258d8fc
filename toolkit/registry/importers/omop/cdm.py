"""The OMOP CDM 5.3 and 5.4 tables Regent reads, with their columns in specification order.

The order matters: OHDSI publishes CSV files without header rows (EunomiaDatasets), whose
columns can only be named from the specification (OHDSI/CommonDataModel, ``inst/ddl/<version>``).
"""

from __future__ import annotations


def _cols(text: str) -> tuple[str, ...]:
    return tuple(text.split())


#: version -> table -> columns in specification order
CDM: dict[str, dict[str, tuple[str, ...]]] = {
    "5.3": {
        "person": _cols(
            """
            person_id gender_concept_id year_of_birth month_of_birth day_of_birth birth_datetime
            race_concept_id ethnicity_concept_id location_id provider_id care_site_id
            person_source_value gender_source_value gender_source_concept_id race_source_value
            race_source_concept_id ethnicity_source_value ethnicity_source_concept_id
            """
        ),
        "observation_period": _cols(
            """
            observation_period_id person_id observation_period_start_date observation_period_end_date
            period_type_concept_id
            """
        ),
        "visit_occurrence": _cols(
            """
            visit_occurrence_id person_id visit_concept_id visit_start_date visit_start_datetime
            visit_end_date visit_end_datetime visit_type_concept_id provider_id care_site_id
            visit_source_value visit_source_concept_id admitting_source_concept_id
            admitting_source_value discharge_to_concept_id discharge_to_source_value
            preceding_visit_occurrence_id
            """
        ),
        "visit_detail": _cols(
            """
            visit_detail_id person_id visit_detail_concept_id visit_detail_start_date
            visit_detail_start_datetime visit_detail_end_date visit_detail_end_datetime
            visit_detail_type_concept_id provider_id care_site_id visit_detail_source_value
            visit_detail_source_concept_id admitting_source_value admitting_source_concept_id
            discharge_to_source_value discharge_to_concept_id preceding_visit_detail_id
            visit_detail_parent_id visit_occurrence_id
            """
        ),
        "condition_occurrence": _cols(
            """
            condition_occurrence_id person_id condition_concept_id condition_start_date
            condition_start_datetime condition_end_date condition_end_datetime condition_type_concept_id
            condition_status_concept_id stop_reason provider_id visit_occurrence_id visit_detail_id
            condition_source_value condition_source_concept_id condition_status_source_value
            """
        ),
        "drug_exposure": _cols(
            """
            drug_exposure_id person_id drug_concept_id drug_exposure_start_date
            drug_exposure_start_datetime drug_exposure_end_date drug_exposure_end_datetime
            verbatim_end_date drug_type_concept_id stop_reason refills quantity days_supply sig
            route_concept_id lot_number provider_id visit_occurrence_id visit_detail_id
            drug_source_value drug_source_concept_id route_source_value dose_unit_source_value
            """
        ),
        "procedure_occurrence": _cols(
            """
            procedure_occurrence_id person_id procedure_concept_id procedure_date procedure_datetime
            procedure_type_concept_id modifier_concept_id quantity provider_id visit_occurrence_id
            visit_detail_id procedure_source_value procedure_source_concept_id modifier_source_value
            """
        ),
        "device_exposure": _cols(
            """
            device_exposure_id person_id device_concept_id device_exposure_start_date
            device_exposure_start_datetime device_exposure_end_date device_exposure_end_datetime
            device_type_concept_id unique_device_id quantity provider_id visit_occurrence_id
            visit_detail_id device_source_value device_source_concept_id
            """
        ),
        "measurement": _cols(
            """
            measurement_id person_id measurement_concept_id measurement_date measurement_datetime
            measurement_time measurement_type_concept_id operator_concept_id value_as_number
            value_as_concept_id unit_concept_id range_low range_high provider_id visit_occurrence_id
            visit_detail_id measurement_source_value measurement_source_concept_id unit_source_value
            value_source_value
            """
        ),
        "observation": _cols(
            """
            observation_id person_id observation_concept_id observation_date observation_datetime
            observation_type_concept_id value_as_number value_as_string value_as_concept_id
            qualifier_concept_id unit_concept_id provider_id visit_occurrence_id visit_detail_id
            observation_source_value observation_source_concept_id unit_source_value
            qualifier_source_value
            """
        ),
        "specimen": _cols(
            """
            specimen_id person_id specimen_concept_id specimen_type_concept_id specimen_date
            specimen_datetime quantity unit_concept_id anatomic_site_concept_id
            disease_status_concept_id specimen_source_id specimen_source_value unit_source_value
            anatomic_site_source_value disease_status_source_value
            """
        ),
        "death": _cols(
            """
            person_id death_date death_datetime death_type_concept_id cause_concept_id
            cause_source_value cause_source_concept_id
            """
        ),
        "note": _cols(
            """
            note_id person_id note_date note_datetime note_type_concept_id note_class_concept_id
            note_title note_text encoding_concept_id language_concept_id provider_id visit_occurrence_id
            visit_detail_id note_source_value
            """
        ),
        "note_nlp": _cols(
            """
            note_nlp_id note_id section_concept_id snippet offset lexical_variant note_nlp_concept_id
            note_nlp_source_concept_id nlp_system nlp_date nlp_datetime term_exists term_temporal
            term_modifiers
            """
        ),
        "cdm_source": _cols(
            """
            cdm_source_name cdm_source_abbreviation cdm_holder source_description
            source_documentation_reference cdm_etl_reference source_release_date cdm_release_date
            cdm_version vocabulary_version
            """
        ),
        "concept": _cols(
            """
            concept_id concept_name domain_id vocabulary_id concept_class_id standard_concept
            concept_code valid_start_date valid_end_date invalid_reason
            """
        ),
        "concept_relationship": _cols(
            """
            concept_id_1 concept_id_2 relationship_id valid_start_date valid_end_date invalid_reason
            """
        ),
        "concept_ancestor": _cols(
            """
            ancestor_concept_id descendant_concept_id min_levels_of_separation max_levels_of_separation
            """
        ),
    },
    "5.4": {
        "person": _cols(
            """
            person_id gender_concept_id year_of_birth month_of_birth day_of_birth birth_datetime
            race_concept_id ethnicity_concept_id location_id provider_id care_site_id
            person_source_value gender_source_value gender_source_concept_id race_source_value
            race_source_concept_id ethnicity_source_value ethnicity_source_concept_id
            """
        ),
        "observation_period": _cols(
            """
            observation_period_id person_id observation_period_start_date observation_period_end_date
            period_type_concept_id
            """
        ),
        "visit_occurrence": _cols(
            """
            visit_occurrence_id person_id visit_concept_id visit_start_date visit_start_datetime
            visit_end_date visit_end_datetime visit_type_concept_id provider_id care_site_id
            visit_source_value visit_source_concept_id admitted_from_concept_id
            admitted_from_source_value discharged_to_concept_id discharged_to_source_value
            preceding_visit_occurrence_id
            """
        ),
        "visit_detail": _cols(
            """
            visit_detail_id person_id visit_detail_concept_id visit_detail_start_date
            visit_detail_start_datetime visit_detail_end_date visit_detail_end_datetime
            visit_detail_type_concept_id provider_id care_site_id visit_detail_source_value
            visit_detail_source_concept_id admitted_from_concept_id admitted_from_source_value
            discharged_to_source_value discharged_to_concept_id preceding_visit_detail_id
            parent_visit_detail_id visit_occurrence_id
            """
        ),
        "condition_occurrence": _cols(
            """
            condition_occurrence_id person_id condition_concept_id condition_start_date
            condition_start_datetime condition_end_date condition_end_datetime condition_type_concept_id
            condition_status_concept_id stop_reason provider_id visit_occurrence_id visit_detail_id
            condition_source_value condition_source_concept_id condition_status_source_value
            """
        ),
        "drug_exposure": _cols(
            """
            drug_exposure_id person_id drug_concept_id drug_exposure_start_date
            drug_exposure_start_datetime drug_exposure_end_date drug_exposure_end_datetime
            verbatim_end_date drug_type_concept_id stop_reason refills quantity days_supply sig
            route_concept_id lot_number provider_id visit_occurrence_id visit_detail_id
            drug_source_value drug_source_concept_id route_source_value dose_unit_source_value
            """
        ),
        "procedure_occurrence": _cols(
            """
            procedure_occurrence_id person_id procedure_concept_id procedure_date procedure_datetime
            procedure_end_date procedure_end_datetime procedure_type_concept_id modifier_concept_id
            quantity provider_id visit_occurrence_id visit_detail_id procedure_source_value
            procedure_source_concept_id modifier_source_value
            """
        ),
        "device_exposure": _cols(
            """
            device_exposure_id person_id device_concept_id device_exposure_start_date
            device_exposure_start_datetime device_exposure_end_date device_exposure_end_datetime
            device_type_concept_id unique_device_id production_id quantity provider_id
            visit_occurrence_id visit_detail_id device_source_value device_source_concept_id
            unit_concept_id unit_source_value unit_source_concept_id
            """
        ),
        "measurement": _cols(
            """
            measurement_id person_id measurement_concept_id measurement_date measurement_datetime
            measurement_time measurement_type_concept_id operator_concept_id value_as_number
            value_as_concept_id unit_concept_id range_low range_high provider_id visit_occurrence_id
            visit_detail_id measurement_source_value measurement_source_concept_id unit_source_value
            unit_source_concept_id value_source_value measurement_event_id meas_event_field_concept_id
            """
        ),
        "observation": _cols(
            """
            observation_id person_id observation_concept_id observation_date observation_datetime
            observation_type_concept_id value_as_number value_as_string value_as_concept_id
            qualifier_concept_id unit_concept_id provider_id visit_occurrence_id visit_detail_id
            observation_source_value observation_source_concept_id unit_source_value
            qualifier_source_value value_source_value observation_event_id obs_event_field_concept_id
            """
        ),
        "specimen": _cols(
            """
            specimen_id person_id specimen_concept_id specimen_type_concept_id specimen_date
            specimen_datetime quantity unit_concept_id anatomic_site_concept_id
            disease_status_concept_id specimen_source_id specimen_source_value unit_source_value
            anatomic_site_source_value disease_status_source_value
            """
        ),
        "death": _cols(
            """
            person_id death_date death_datetime death_type_concept_id cause_concept_id
            cause_source_value cause_source_concept_id
            """
        ),
        "note": _cols(
            """
            note_id person_id note_date note_datetime note_type_concept_id note_class_concept_id
            note_title note_text encoding_concept_id language_concept_id provider_id visit_occurrence_id
            visit_detail_id note_source_value note_event_id note_event_field_concept_id
            """
        ),
        "note_nlp": _cols(
            """
            note_nlp_id note_id section_concept_id snippet offset lexical_variant note_nlp_concept_id
            note_nlp_source_concept_id nlp_system nlp_date nlp_datetime term_exists term_temporal
            term_modifiers
            """
        ),
        "cdm_source": _cols(
            """
            cdm_source_name cdm_source_abbreviation cdm_holder source_description
            source_documentation_reference cdm_etl_reference source_release_date cdm_release_date
            cdm_version cdm_version_concept_id vocabulary_version
            """
        ),
        "concept": _cols(
            """
            concept_id concept_name domain_id vocabulary_id concept_class_id standard_concept
            concept_code valid_start_date valid_end_date invalid_reason
            """
        ),
        "concept_relationship": _cols(
            """
            concept_id_1 concept_id_2 relationship_id valid_start_date valid_end_date invalid_reason
            """
        ),
        "concept_ancestor": _cols(
            """
            ancestor_concept_id descendant_concept_id min_levels_of_separation max_levels_of_separation
            """
        ),
    },
}
VERSIONS = tuple(CDM)

#: Every column of a table in any version (a header naming a column outside this is a typo).
ALL_COLUMNS: dict[str, tuple[str, ...]] = {
    t: tuple(dict.fromkeys(c for v in VERSIONS for c in CDM[v][t])) for t in CDM["5.4"]
}

VOCABULARY_TABLES = ("concept", "concept_relationship", "concept_ancestor")

#: Columns a table cannot do without (by name; a header that lacks one is refused).
REQUIRED: dict[str, tuple[str, ...]] = {
    "person": ("person_id", "year_of_birth"),
    "observation_period": ("person_id", "observation_period_start_date", "observation_period_end_date"),
    "visit_occurrence": ("person_id", "visit_concept_id", "visit_start_date"),
    "visit_detail": ("person_id", "visit_detail_concept_id", "visit_detail_start_date"),
    "condition_occurrence": ("person_id", "condition_concept_id", "condition_start_date"),
    "drug_exposure": ("person_id", "drug_concept_id", "drug_exposure_start_date"),
    "procedure_occurrence": ("person_id", "procedure_concept_id", "procedure_date"),
    "device_exposure": ("person_id", "device_concept_id", "device_exposure_start_date"),
    "measurement": ("person_id", "measurement_concept_id", "measurement_date"),
    "observation": ("person_id", "observation_concept_id", "observation_date"),
    "specimen": ("person_id", "specimen_concept_id", "specimen_date"),
    "death": ("person_id", "death_date"),
    "note": ("note_id", "person_id", "note_date"),
    "note_nlp": ("note_id", "note_nlp_concept_id"),
    "cdm_source": (),
    "concept": ("concept_id", "vocabulary_id", "concept_code"),
    "concept_relationship": ("concept_id_1", "concept_id_2", "relationship_id"),
    "concept_ancestor": ("ancestor_concept_id", "descendant_concept_id"),
}

#: CDM tables that hold no clinical facts for a registry, and why each is not imported.
NOT_IMPORTED: dict[str, str] = {
    "location": "addresses: identifying, and not a clinical fact",
    "care_site": "organisational (person.care_site_id is kept as site_id)",
    "provider": "clinicians: not a fact about the patient",
    "payer_plan_period": "insurance enrolment: not a clinical fact",
    "cost": "costs: not a clinical fact",
    "drug_era": "derived from drug_exposure (recompute from events)",
    "dose_era": "derived from drug_exposure (recompute from events)",
    "condition_era": "derived from condition_occurrence (recompute from events)",
    "episode": "episodes of care (oncology extension): not mapped yet",
    "episode_event": "episodes of care (oncology extension): not mapped yet",
    "fact_relationship": "links between facts: the registry keeps facts, not links",
    "metadata": "CDM instance metadata",
    "vocabulary": "vocabulary metadata (concept carries what is needed)",
    "domain": "vocabulary metadata (concept carries what is needed)",
    "concept_class": "vocabulary metadata (concept carries what is needed)",
    "relationship": "vocabulary metadata (concept_relationship carries what is needed)",
    "concept_synonym": "synonyms: not needed to map codes",
    "source_to_concept_map": "site mapping table (the ETL already applied it)",
    "drug_strength": "drug strengths: not needed to map codes",
    "cohort": "results schema (cohorts are rebuilt from specs)",
    "cohort_definition": "results schema (cohorts are rebuilt from specs)",
    "attribute_definition": "results schema",
    "cohort_attribute": "results schema",
}
