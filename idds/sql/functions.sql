-- DuckDB macros that parse and normalise values exactly as the EMR extract contract
-- allows. One home for these rules: the ingestion contract checks call them to decide
-- whether a raw value is valid, and the dbt staging models call them to type it, so a
-- value that passes the contract always types in staging.
-- Rendered from expectations/mapping.yml ({{ '{{ }}' }} fields) by idds.warehouse.

-- text: NULL for the contract's missing tokens, else trimmed with full-width ASCII folded
-- (translate() is the costly part, so it runs only on values holding a full-width
-- character: pure ASCII values, strlen = length, and the rest skip it, same result)
create or replace macro idds_text(x) as
    case
        when x is null then null
        when strlen(x) = length(x) or not regexp_matches(x, '[{{ fullwidth }}]') then
            case when trim(x) in ({{ missing_tokens }}) then null else trim(x) end
        when trim(translate(x, '{{ fullwidth }}', '{{ ascii }}')) in ({{ missing_tokens }}) then null
        else trim(translate(x, '{{ fullwidth }}', '{{ ascii }}'))
    end;

create or replace macro idds_missing(x) as idds_text(x) is null;

-- numbers: 152084 / 152084.00 / 152,084.00 / full-width digits / a trailing unit (65kg, 7分)
-- (the thousands separator is removed only from values holding a comma: same result, one
-- regular expression less for the others)
create or replace macro idds_number_text(x) as
    regexp_extract(
        case when contains(idds_text(x), ',')
             then regexp_replace(idds_text(x), '([0-9]),([0-9]{3})', '\1\2', 'g')
             else idds_text(x) end,
        '^([+-]?[0-9]+([.][0-9]+)?)\s*([^0-9\s][^0-9]*)?$', 1);

create or replace macro idds_number(x) as try_cast(nullif(idds_number_text(x), '') as double);

-- the unit written inside a value ("130斤" -> "斤"), lower-cased; NULL when none
create or replace macro idds_value_unit(x) as
    nullif(lower(trim(regexp_extract(
        regexp_replace(idds_text(x), '([0-9]),([0-9]{3})', '\1\2', 'g'),
        '^[+-]?[0-9]+([.][0-9]+)?\s*([^0-9\s][^0-9]*)$', 2))), '');

-- dates and date-times: 2021-03-05, 2021/3/5, 2021年3月5日, 20210305, each optionally
-- followed by " 14:22", " 14:22:00" or "T14:22:00". Local time (Asia/Shanghai), no zone.
create or replace macro idds_datetime_text(x) as
    regexp_replace(
        replace(replace(replace(replace(replace(idds_text(x), '年', '-'), '月', '-'), '日', ''), '/', '-'), 'T', ' '),
        '^([0-9]{4})([0-9]{2})([0-9]{2})(\s|$)', '\1-\2-\3\4');

-- The first branch is a fast path for the common numeric forms (2021-03-05, 2021/3/5,
-- each with " 14:22[:00]" or "T14:22[:00]"): for these idds_datetime_text only swaps '/'
-- for '-' and 'T' for ' ', so the result is the same as the general branch's.
create or replace macro idds_timestamp(x) as
    case when regexp_full_match(idds_text(x), '[0-9]{4}[-/][0-9]{1,2}[-/][0-9]{1,2}([ T][0-9]{1,2}:[0-9]{2}(:[0-9]{2})?)?')
         then try_cast(replace(replace(idds_text(x), '/', '-'), 'T', ' ') as timestamp)
         when regexp_matches(idds_datetime_text(x), '^[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}( [0-9]{1,2}:[0-9]{2}(:[0-9]{2})?)?$')
         then try_cast(idds_datetime_text(x) as timestamp) end;

create or replace macro idds_date(x) as cast(idds_timestamp(x) as date);

-- a date that may be given to the month only (2021-03, 2021年3月): the first of the month
create or replace macro idds_month_date(x) as
    coalesce(
        idds_date(x),
        case when regexp_matches(idds_datetime_text(x), '^[0-9]{4}-[0-9]{1,2}-?$')
             then try_cast(rtrim(idds_datetime_text(x), '-') || '-01' as date) end);

-- enumerations: the canonical code for a label of a domain in mapping.yml, else NULL
create or replace macro idds_enum(domain, x) as
    (MAP { {{ enum_map }} })[domain || '|' || lower(idds_text(x))];

-- pseudonymisation: a keyed hash of the MRN. The key is a session variable set on each
-- connection (idds.warehouse / idds.dbt_plugin); it never appears in SQL text.
create or replace macro idds_patient_key(x) as
    case when idds_text(x) is not null
         then 'pk_' || substr(sha256(getvariable('idds_pseudonym_key') || '|' || idds_text(x)), 1, 20) end;

-- ICD-10 without the national clinical extension: C34.900x001 -> C34.9, C349 -> C34.9
create or replace macro idds_icd10(x) as
    case when regexp_matches(upper(replace(idds_text(x), ' ', '')), '^[A-Z][0-9]{2}')
         then regexp_extract(upper(replace(idds_text(x), ' ', '')), '^([A-Z][0-9]{2})', 1)
              || coalesce('.' || nullif(regexp_extract(upper(replace(idds_text(x), ' ', '')), '^[A-Z][0-9]{2}[.]?([0-9])', 1), ''), '')
    end;

-- vertebral levels: "T6", "T6椎体", "胸6" -> T6
create or replace macro idds_level(x) as
    case when regexp_matches(
            replace(replace(replace(replace(upper(replace(idds_text(x), ' ', '')), '椎体', ''), '水平', ''), '胸', 'T'), '腰', 'L'),
            '^[CTLS][0-9]{1,2}$')
         then replace(replace(replace(replace(upper(replace(idds_text(x), ' ', '')), '椎体', ''), '水平', ''), '胸', 'T'), '腰', 'L')
    end;

-- interspaces: "L2/3", "L2-3", "L2~3", "腰2-3", "L2-L3", "T12/L1" -> L2-L3, T12-L1
create or replace macro idds_interspace_text(x) as
    regexp_replace(
        replace(replace(upper(replace(idds_text(x), ' ', '')), '腰', 'L'), '胸', 'T'),
        '[/~～－—_]|至|间隙', '-', 'g');

create or replace macro idds_interspace(x) as
    case
        when regexp_matches(idds_interspace_text(x), '^[CTLS][0-9]{1,2}-[CTLS][0-9]{1,2}$')
            then idds_interspace_text(x)
        when regexp_matches(idds_interspace_text(x), '^[CTLS][0-9]{1,2}-[0-9]{1,2}$')
            then split_part(idds_interspace_text(x), '-', 1) || '-'
                 || left(idds_interspace_text(x), 1) || split_part(idds_interspace_text(x), '-', 2)
    end;
