"""`cli.no_arguments`: the one check that an entry point was given flags only."""

import pytest

from rarl_tf import cli


def test_flags_only_passes():
    cli.no_arguments(["python -m rarl_tf.evaluate"])


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
