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

-- Identifier shapes (mapping.yml identifier_patterns): resident ID cards, mobile and
-- landline numbers, this hospital's MRNs, wherever they appear in a text, are replaced
-- by '(identifier withheld)'. Used for everything shown outside the warehouse (the
-- analyst file, the reports, `idds quarantine`): a quarantined or drifted value may hold
-- an identifier whatever column it came in. Each rule is `(^|[^<boundary>])(?:<regex>)
-- ([^<boundary>]|$)`; RE2 has no look-around, so a match consumes the character after
-- it, and a second pass masks a match that touched the previous one ("a,b" -> both).
create or replace macro idds_mask_identifiers_pass(x) as
    {% for rule in identifier_rules %}regexp_replace({% endfor %}x{% for rule in identifier_rules %}
        , {{ rule.regex }}, {{ rule.replacement }}, 'g'){% endfor %};

-- full-width digits are folded to ASCII first (only in a value holding one); a value
-- without any digit is returned as it is
create or replace macro idds_mask_identifiers(x) as
    case
        when x is null or not regexp_matches(x, '[0-9０-９]') then x
        else idds_mask_identifiers_pass(idds_mask_identifiers_pass(
            case when regexp_matches(x, '[０-９]') then translate(x, '{{ fullwidth }}', '{{ ascii }}') else x end))
    end;

-- a delivered column header as it may be shown: identifier shapes masked, and withheld
-- when it is no plausible column name (over 40 characters, or mostly digits: a record
-- value such as an MRN or a date, as when a file arrives without its header line)
create or replace macro idds_mask_header(h) as
    case
        when h is null then null
        when length(h) > 40 then '(header withheld: ' || length(h) || ' characters)'
        when idds_mask_identifiers(h) is distinct from h then idds_mask_identifiers(h)
        when 2 * length(regexp_replace(h, '[^0-9０-９]', '', 'g'))
             >= greatest(length(regexp_replace(h, '\s', '', 'g')), 1)
            then '(header withheld: mostly digits)'
        else h
    end;

-- the reasons of a quarantined record with every quoted value withheld: "field sex
-- ('13812345678') is not ..." -> "field sex ('(value withheld)') is not ...". The value
-- quoted for each failing field is the field's value in raw_row, replaced as a literal
-- (exact even when the value itself holds "')"); any other quoted text, then identifier
-- shapes, are masked as well.
create or replace macro idds_mask_reasons(reasons, raw_row, check_ids) as
    idds_mask_identifiers(regexp_replace(
        case when coalesce(json_valid(raw_row), false) and check_ids is not null
             then list_reduce(check_ids, lambda acc, c:
                      case when not regexp_full_match(split_part(c, '.', 3), '[A-Za-z0-9_]+') then acc
                           else replace(acc,
                               'field ' || split_part(c, '.', 3) || ' ('''
                                   || coalesce(json_extract_string(raw_row, '$.' || split_part(c, '.', 3)), '')
                                   || ''')',
                               'field ' || split_part(c, '.', 3) || ' (''(value withheld)'')') end, reasons)
             else reasons end,
        '\(''(?s:.*?)''\)', '(''(value withheld)'')', 'g'));
