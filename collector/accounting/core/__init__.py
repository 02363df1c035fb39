"""Energy and carbon accounting: the pure core.

Meter counters become interval energy (`counters`), energy becomes standard coal
equivalent (`conversion`) and CO2 (`carbon`), both become intensities per unit of output
(`intensity`) that are judged against benchmarks (`benchmarks`), targets (`targets`) and
watched for drift (`alerts`); `demand` and `tou` give the tariff view. Every figure taken
from a standard or a publication is a `factors.Sourced` value read from the packaged YAML
data files (`data`), so each number in a report can name the text behind it.

Every module here is pure: no clock, no network, no database. Callers pass times in.
"""
