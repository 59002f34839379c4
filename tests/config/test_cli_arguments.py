"""`cli.no_arguments`: the one check that an entry point was given flags only."""

import pytest
from absl import flags as absl_flags

from rarl_tf import cli


def test_flags_only_passes(capsys):
    # absl parses the flags and leaves the program name alone: the entry point then runs.
    values = absl_flags.FlagValues()
    absl_flags.DEFINE_integer("views", 1, "views", flag_values=values)
    argv = values(["python -m rarl_tf.evaluate", "--views=10"])
    ran = []
    main = cli.user_errors_exit(lambda argv: ran.append((cli.no_arguments(argv), values.views)))
    main(argv)
    assert ran == [(None, 10)]
    assert capsys.readouterr().err == ""


def test_a_stray_word_is_a_user_error_naming_it(capsys):
    with pytest.raises(
        ValueError,
        match=r"unexpected arguments \['views=10'\]; flags go as "
        r"--name=value",
    ):
        cli.no_arguments(["prog", "views=10"])
    main = cli.user_errors_exit(cli.no_arguments)
    with pytest.raises(SystemExit) as exit_info:
        main(["prog", "--views", "10"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip() == (
        "error: unexpected arguments ['--views', '10']; flags go as --name=value"
    )
