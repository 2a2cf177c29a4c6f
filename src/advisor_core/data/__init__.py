"""Inputs read and validated once, at the edge: results into typed records, command-line values.

Results files (``results_files``: bytes and JSON), text parsers (``scenario``), field bounds
(``fields``), the sample-list rule (``samples`` and its kernel ``_samples``), the record
(``record``), analysis CSVs (``analysis``), the one way from a file to records (``reader``), the
value types of command-line flags shared by the command and the exporters (``argtypes``) and the
path type of public functions (``paths``). Imports nothing else of advisor_core: every other
package reads what this one makes.
"""
