"""The ``alertmanager:`` config section: defaults, values, problems with lines."""

from __future__ import annotations

import pytest

from perfwarden.config.load import ConfigError, parse_config


class TestAlertmanagerSection:
    def test_off_by_default(self) -> None:
        """No section: no URLs, Prometheus' resend delay."""
        settings = parse_config("version: 1\n").alertmanager
        assert () == settings.urls
        assert 60.0 == settings.resend_interval

    def test_values(self) -> None:
        """URLs, durations, labels and the external URL are read."""
        settings = parse_config(
            "version: 1\n"
            "alertmanager:\n"
            "  urls: [http://am-0:9093, https://am.example/prefix]\n"
            "  timeout: 2s\n"
            "  resend_interval: 30s\n"
            "  labels: {cluster: eu-1}\n"
            "  external_url: http://pod-7:9464/\n"
        ).alertmanager
        assert ("http://am-0:9093", "https://am.example/prefix") == settings.urls
        assert (2.0, 30.0) == (settings.timeout, settings.resend_interval)
        assert {"cluster": "eu-1"} == dict(settings.labels)
        assert "http://pod-7:9464" == settings.external_url

    def test_every_problem_with_its_line(self) -> None:
        """Bad URLs, durations, label names and keys are all reported."""
        with pytest.raises(ConfigError) as caught:
            parse_config(
                "version: 1\n"
                "alertmanager:\n"
                "  urls: [ftp://x, 3]\n"
                "  timeout: 0\n"
                "  labels: {9x: a, __y: b, ok: [1]}\n"
                "  bogus: 1\n"
            )
        text = str(caught.value)
        assert (
            "<string>:3: alertmanager.urls[0]: must be an http:// or https://" in text
        )
        assert "<string>:3: alertmanager.urls[1]: must be a string" in text
        assert "<string>:4: alertmanager.timeout:" in text
        assert "alertmanager.labels.9x: is not a valid Prometheus label name" in text
        assert "alertmanager.labels.__y: is not a valid Prometheus label name" in text
        assert "<string>:5: alertmanager.labels.ok: must be a string" in text
        assert "<string>:6: alertmanager.bogus: unknown key" in text
